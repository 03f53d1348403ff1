import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    /// Reads what it undoes under the same row lock a revocation takes, so that no cut can slip in between.
    public func unrevoke(_ request: UnrevokeRequest) async throws -> RevocationOutcome {
        let lock = self.database.rowLock
        let outcome = try await self.database.transaction { db in
            let undo = try await Self.plannedUndo(of: request.target, lock: lock, on: db)
            let entry: RevocationEntry
            var details = ["reason": request.reason ?? "", "undoesSeq": "\(undo.undoneSeq)"]
            switch request.target {
            case .subject(let userId):
                try await db.raw("UPDATE users SET accepted_from_version = \(bind: undo.restore) WHERE id = \(bind: Column.id(userId))").run()
                entry = try await Self.appendEntry(
                    .subject(userId: userId, acceptedFromVersion: undo.restore), cause: .unrevoke, at: request.at, actorId: request.actorId,
                    reason: request.reason, previousValue: undo.current, undoesSeq: undo.undoneSeq, on: db
                )
                details["kind"] = "subject"
            case .global:
                try await db.raw("UPDATE global_state SET accepted_epoch = \(bind: undo.restore) WHERE id = 1").run()
                entry = try await Self.appendEntry(
                    .global(epoch: undo.restore), cause: .unrevoke, at: request.at, actorId: request.actorId, reason: request.reason,
                    previousValue: undo.current, undoesSeq: undo.undoneSeq, on: db
                )
                details["kind"] = "global"
            }
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
        self.database.announceRevocations()
        return outcome
    }

    /// What undoing the target's latest cut means: the row undone, the cut-off it restores and the one in force now.
    /// The un-revoke and its dry run both decide here, with the same checks in the same order, so that a dry run
    /// refuses exactly where the un-revoke would, with the same error. `lock` is the un-revoke's row lock; a dry run,
    /// which changes nothing, reads without one.
    static func plannedUndo(of target: UnrevokeRequest.Target, lock: String, on db: any SQLDatabase) async throws -> PlannedUndo {
        switch target {
        case .subject(let userId):
            let id = Column.id(userId)
            // A deleted account is not found: its last cut is final, and its tombstone is never revived.
            let user = try await db.raw(
                "SELECT is_active, accepted_from_version FROM users WHERE id = \(bind: id) AND deleted_at IS NULL\(unsafeRaw: lock)"
            ).first()
            guard let user else { throw AuthError.userNotFound }
            guard try user.decode(column: "is_active", as: Int.self) != 0 else { throw AuthError.accountInactiveCannotBeUnrevoked }
            let current = try user.decode(column: "accepted_from_version", as: Int64.self)
            let undone = try await Self.latestUndoable(kind: "subject", userId: id, on: db)
            return PlannedUndo(undoneSeq: undone.seq, restore: undone.restore, current: current)
        case .global:
            let current = try await Self.acceptedEpoch(lock: lock, on: db)
            let undone = try await Self.latestUndoable(kind: "global", userId: nil, on: db)
            return PlannedUndo(undoneSeq: undone.seq, restore: undone.restore, current: current)
        }
    }

    /// An un-revoke decided and not yet written (see ``plannedUndo(of:lock:on:)``).
    struct PlannedUndo {
        /// The `seq` of the cut undone.
        var undoneSeq: Int64
        /// The cut-off that cut replaced, which the undo puts back.
        var restore: Int64
        /// The cut-off in force now (the user's `accepted_from_version`, or the accepted epoch).
        var current: Int64
    }

    /// The top of the target's cut stack: its latest cut that no un-revoke row has undone, and the value it replaced.
    /// Un-revokes only ever undo the top, so the cuts not undone are exactly those below it; refusing a final top
    /// means no undo can reach past a cut made for security, before or after the one asked for.
    private static func latestUndoable(kind: String, userId: String?, on db: any SQLDatabase) async throws -> (seq: Int64, restore: Int64) {
        guard let row = try await Self.latestCuts(kind: kind, userIds: userId.map { [$0] }, on: db).first else { throw AuthError.nothingToUndo }
        guard row.cause.isUndoable else { throw AuthError.cutIsFinal(cause: row.cause) }
        guard let restore = row.previousValue else { throw AuthError.nothingToUndo }
        return (row.seq, restore)
    }

    /// The latest not-undone cut of each user listed (or the latest global cut when `userIds` is nil).
    private static func latestCuts(
        kind: String, userIds: [String]?, on db: any SQLDatabase
    ) async throws -> [(userId: String?, seq: Int64, cause: RevocationCause, previousValue: Int64?)] {
        var sql: SQLQueryString = """
            SELECT r.user_id, r.seq, r.cause, r.previous_value FROM revocations r
            WHERE r.kind = \(bind: kind) AND r.undoes_seq IS NULL
              AND NOT EXISTS (SELECT 1 FROM revocations u WHERE u.undoes_seq = r.seq)
            """
        if let userIds {
            guard !userIds.isEmpty else { return [] }
            sql += " AND r.user_id IN (\(SQLList(userIds.map { SQLBind($0) })))"
        }
        sql += " ORDER BY r.seq DESC"
        if userIds == nil || userIds?.count == 1 { sql += " LIMIT 1" }
        var seen = Set<String>()
        var cuts: [(userId: String?, seq: Int64, cause: RevocationCause, previousValue: Int64?)] = []
        for row in try await db.raw(sql).all() {
            let userId = try row.decode(column: "user_id", as: String?.self)
            if let userId, !seen.insert(userId).inserted { continue }
            cuts.append(
                (
                    userId, try row.decode(column: "seq", as: Int64.self), RevocationCause(stored: try row.decode(column: "cause", as: String?.self)),
                    try row.decode(column: "previous_value", as: Int64?.self)
                )
            )
        }
        return cuts
    }

    public func undoableCuts(userIds: [UUID]) async throws -> UndoableCuts {
        let ids = userIds.map(Column.id)
        return try await self.database.read { db in
            var undoable = UndoableCuts()
            for cut in try await Self.latestCuts(kind: "subject", userIds: ids, on: db) where cut.cause.isUndoable && cut.previousValue != nil {
                if let id = cut.userId.flatMap(UUID.init(uuidString:)) { undoable.subjects.insert(id) }
            }
            if !undoable.subjects.isEmpty {
                // A deactivated account's cuts are not undone: activate it first (and its deactivation is final anyway).
                let inactive = try await db.raw(
                    "SELECT id FROM users WHERE is_active = 0 AND id IN (\(SQLList(undoable.subjects.map { SQLBind(Column.id($0)) })))"
                ).all()
                for row in inactive { if let id = UUID(uuidString: try row.decode(column: "id", as: String.self)) { undoable.subjects.remove(id) } }
            }
            undoable.global = try await Self.latestCuts(kind: "global", userIds: nil, on: db).first.map { $0.cause.isUndoable } ?? false
            return undoable
        }
    }

    public func users(matching search: String?, afterEmail: String?, limit: Int) async throws -> [User] {
        // Deleted accounts are not listed: their rows are tombstones, with no address to show or search.
        var conditions: [SQLQueryString] = ["deleted_at IS NULL"]
        if let search, !search.isEmpty {
            let escaped = search.lowercased().replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_")
            conditions.append("email_normalized LIKE \(bind: "%" + escaped + "%") ESCAPE '\\'")
        }
        if let afterEmail { conditions.append("email_normalized > \(bind: afterEmail)") }
        var sql: SQLQueryString = "SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE " + conditions.joined(separator: " AND ")
        sql += " ORDER BY email_normalized LIMIT \(literal: max(1, min(limit, 1000)))"
        let statement = sql
        return try await self.database.read { db in try await db.raw(statement).all().map { try $0.user() } }
    }

    public func users(ids: [UUID]) async throws -> [User] {
        guard !ids.isEmpty else { return [] }
        let list = SQLList(ids.map { SQLBind(Column.id($0)) })
        return try await self.database.read { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE id IN (\(list))").all().map { try $0.user() }
        }
    }

    /// A deleted account is never activated again: it is not found.
    public func activate(userId: UUID, audit: AuditRecord) async throws -> User? {
        try await self.database.transaction { db in
            let id = Column.id(userId)
            try await db.raw(
                "UPDATE users SET is_active = 1, updated_at = \(bind: Column.millis(audit.at)) WHERE id = \(bind: id) AND deleted_at IS NULL"
            ).run()
            guard
                let user = try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE id = \(bind: id) AND deleted_at IS NULL").first()?
                    .user()
            else { return nil }
            try await Self.insertAudit(audit, on: db)
            return user
        }
    }

    public func deleteAuditEvents(before date: Date) async throws -> Int {
        let cutoff = Column.millis(date)
        var total = 0
        // In batches, each its own short transaction, like the other housekeeping: a year of audit rows must not
        // hold the write lock while sign-outs wait.
        while true {
            let batch = try await self.database.transaction { db -> Int in
                let rows = try await db.raw(
                    "SELECT id FROM audit_events WHERE at < \(bind: cutoff) ORDER BY id LIMIT \(literal: Self.deletionBatch)"
                ).all()
                guard let last = try rows.last?.decode(column: "id", as: Int64.self) else { return 0 }
                try await db.raw("DELETE FROM audit_events WHERE at < \(bind: cutoff) AND id <= \(bind: last)").run()
                return rows.count
            }
            total += batch
            if batch < Self.deletionBatch { return total }
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
