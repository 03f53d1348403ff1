import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    public func unrevoke(_ request: UnrevokeRequest) async throws -> RevocationOutcome {
        try await self.database.transaction { db in
            let entry: RevocationEntry
            let undoneSeq: Int64
            var details = ["reason": request.reason ?? ""]
            switch request.target {
            case .subject(let userId):
                let id = Column.id(userId)
                guard let user = try await db.raw("SELECT is_active, accepted_from_version FROM users WHERE id = \(bind: id)").first() else {
                    throw AuthError.userNotFound
                }
                guard try user.decode(column: "is_active", as: Int.self) != 0 else { throw AuthError.accountInactiveCannotBeUnrevoked }
                let current = try user.decode(column: "accepted_from_version", as: Int64.self)
                let undone = try await Self.latestUndoable(kind: "subject", userId: id, on: db)
                undoneSeq = undone.seq
                try await db.raw("UPDATE users SET accepted_from_version = \(bind: undone.restore) WHERE id = \(bind: id)").run()
                entry = try await Self.appendEntry(
                    .subject(userId: userId, acceptedFromVersion: undone.restore), at: request.at, actorId: request.actorId,
                    reason: request.reason, previousValue: current, undoesSeq: undone.seq, on: db
                )
                details["kind"] = "subject"
            case .global:
                let current = try await Self.acceptedEpoch(on: db)
                let undone = try await Self.latestUndoable(kind: "global", userId: nil, on: db)
                undoneSeq = undone.seq
                try await db.raw("UPDATE global_state SET accepted_epoch = \(bind: undone.restore) WHERE id = 1").run()
                entry = try await Self.appendEntry(
                    .global(epoch: undone.restore), at: request.at, actorId: request.actorId, reason: request.reason, previousValue: current,
                    undoesSeq: undone.seq, on: db
                )
                details["kind"] = "global"
            }
            details["undoesSeq"] = "\(undoneSeq)"
            try await Self.insertAudit(
                AuditRecord(
                    at: request.at, event: .unrevoke, actorId: request.actorId,
                    subjectId: { if case .subject(let id) = request.target { return id } else { return nil } }(),
                    origin: request.origin, details: details.filter { !$0.value.isEmpty }
                ),
                on: db
            )
            return RevocationOutcome(entries: [entry])
        }
    }

    /// The latest revoke row of this kind (and user) that no un-revoke row has undone, and the value it replaced.
    private static func latestUndoable(kind: String, userId: String?, on db: any SQLDatabase) async throws -> (seq: Int64, restore: Int64) {
        var sql: SQLQueryString = """
            SELECT r.seq, r.previous_value FROM revocations r
            WHERE r.kind = \(bind: kind) AND r.undoes_seq IS NULL
              AND NOT EXISTS (SELECT 1 FROM revocations u WHERE u.undoes_seq = r.seq)
            """
        if let userId { sql += " AND r.user_id = \(bind: userId)" }
        sql += " ORDER BY r.seq DESC LIMIT 1"
        guard let row = try await db.raw(sql).first(), let restore = try row.decode(column: "previous_value", as: Int64?.self) else {
            throw AuthError.nothingToUndo
        }
        return (try row.decode(column: "seq", as: Int64.self), restore)
    }

    public func users(matching search: String?, afterEmail: String?, limit: Int) async throws -> [User] {
        var conditions: [SQLQueryString] = []
        if let search, !search.isEmpty {
            let escaped = search.lowercased().replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_")
            conditions.append("email_normalized LIKE \(bind: "%" + escaped + "%") ESCAPE '\\'")
        }
        if let afterEmail { conditions.append("email_normalized > \(bind: afterEmail)") }
        var sql: SQLQueryString = "SELECT \(unsafeRaw: Self.userColumns) FROM users"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY email_normalized LIMIT \(literal: max(1, min(limit, 1000)))"
        let statement = sql
        return try await self.database.read { db in try await db.raw(statement).all().map { try $0.user() } }
    }

    public func activate(userId: UUID, audit: AuditRecord) async throws -> User? {
        try await self.database.transaction { db in
            let id = Column.id(userId)
            try await db.raw("UPDATE users SET is_active = 1, updated_at = \(bind: Column.millis(audit.at)) WHERE id = \(bind: id)").run()
            guard let user = try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE id = \(bind: id)").first()?.user() else {
                return nil
            }
            try await Self.insertAudit(audit, on: db)
            return user
        }
    }

    public func deleteAuditEvents(before date: Date) async throws -> Int {
        try await self.database.transaction { db in
            let cutoff = Column.millis(date)
            let count = try await db.raw("SELECT COUNT(*) AS n FROM audit_events WHERE at < \(bind: cutoff)").first()?.decode(column: "n", as: Int.self) ?? 0
            if count > 0 { try await db.raw("DELETE FROM audit_events WHERE at < \(bind: cutoff)").run() }
            return count
        }
    }

    public func deleteExpiredRows(revocationsBefore: Date, sessionsBefore: Date) async throws -> ExpiredRowsDeleted {
        var deleted = ExpiredRowsDeleted()
        let revocationCutoff = Column.millis(revocationsBefore)
        let sessionCutoff = Column.millis(sessionsBefore)
        // Small batches keep each write transaction short, so that sign-outs committed meanwhile never wait long.
        while true {
            let batch = try await self.database.transaction { db -> Int in
                let rows = try await db.raw(
                    """
                    SELECT seq FROM revocations WHERE kind IN ('token', 'session') AND until_at < \(bind: revocationCutoff)
                    ORDER BY seq LIMIT \(literal: Self.deletionBatch)
                    """
                ).all()
                guard let last = try rows.last?.decode(column: "seq", as: Int64.self) else { return 0 }
                try await db.raw(
                    """
                    DELETE FROM revocations WHERE kind IN ('token', 'session') AND until_at < \(bind: revocationCutoff)
                    AND seq <= \(bind: last)
                    """
                ).run()
                return rows.count
            }
            deleted.revocations += batch
            if batch < Self.deletionBatch { break }
        }
        while true {
            let batch = try await self.database.transaction { db -> (sessions: Int, spent: Int) in
                let ids = try await db.raw(
                    "SELECT id FROM sessions WHERE expires_at < \(bind: sessionCutoff) LIMIT \(literal: Self.deletionBatch)"
                ).all().map { try $0.decode(column: "id", as: String.self) }
                guard !ids.isEmpty else { return (0, 0) }
                let list = SQLList(ids.map { SQLBind($0) })
                let spent = try await db.raw("SELECT COUNT(*) AS n FROM spent_refresh_tokens WHERE session_id IN (\(list))")
                    .first()?.decode(column: "n", as: Int.self) ?? 0
                try await db.raw("DELETE FROM spent_refresh_tokens WHERE session_id IN (\(list))").run()
                try await db.raw("DELETE FROM sessions WHERE id IN (\(list))").run()
                return (ids.count, spent)
            }
            deleted.sessions += batch.sessions
            deleted.spentRefreshTokens += batch.spent
            if batch.sessions < Self.deletionBatch { break }
        }
        return deleted
    }

    static let deletionBatch = 1_000
}
