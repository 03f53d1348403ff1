import Foundation
import SQLKit
import SQLiteNIO
import Synchronization
import TesseraCore

/// Reading the revocation log: a server starting on a log of a million rows reads them all before it answers.
///
/// Every reader selects the same columns, with the kind-specific ones folded into `target` and `value` in SQL, and
/// turns a row into an entry through one ``RevocationLogRow/entry()``. The follower's reads decode each row from
/// the driver's values directly (SQLiteNIO's, PostgresNIO's): through SQLKit's per-column decoders a million rows
/// took about 7 s.
extension SQLAuthStore {
    static let revocationLogColumns = """
        seq, kind,
        CASE kind WHEN 'token' THEN jti WHEN 'session' THEN session_id ELSE user_id END AS target,
        CASE kind WHEN 'subject' THEN accepted_from_version WHEN 'global' THEN epoch ELSE until_at END AS value,
        revoked_at, actor_id, reason, key_id
        """

    static let revocationLogQuery = "SELECT \(revocationLogColumns) FROM revocations WHERE seq > ?1 ORDER BY seq LIMIT ?2"

    public func revocations(after seq: Int64, limit: Int) async throws -> [RevocationEntry] {
        try await self.database.read { db in try await Self.revocationsThroughSQLKit(after: seq, limit: limit, on: db) }
    }

    public func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor {
        try await self.database.readRevocationLog(after: cursor, pageSize: pageSize, onPage: onPage)
    }

    public func watchRevocations(wake: @escaping @Sendable () -> Void) async {
        await self.database.watchRevocations(wake: wake)
    }

    /// The log read through SQLKit, in `seq` order, for display and tests; each dialect's follower read is its
    /// handle's `readRevocationLog`, which maps rows through the same ``RevocationLogRow/entry()``.
    static func revocationsThroughSQLKit(after seq: Int64, limit: Int, on db: any SQLDatabase) async throws -> [RevocationEntry] {
        try await db.raw("SELECT \(unsafeRaw: Self.revocationLogColumns) FROM revocations WHERE seq > \(bind: seq) ORDER BY seq LIMIT \(literal: limit)")
            .all()
            .map { row in
                try RevocationLogRow(
                    seq: row.decode(column: "seq", as: Int64?.self), kind: row.decode(column: "kind", as: String?.self),
                    target: row.decode(column: "target", as: String?.self).flatMap { UUID(parsing: $0) }, value: row.decode(column: "value", as: Int64?.self),
                    revokedAt: row.decode(column: "revoked_at", as: Int64?.self), actorId: row.decode(column: "actor_id", as: String?.self),
                    reason: row.decode(column: "reason", as: String?.self), keyId: row.decode(column: "key_id", as: String?.self)
                ).entry()
            }
    }

    static func revocations(after seq: Int64, limit: Int, on sqlite: SQLiteDatabaseHandle) async throws -> [RevocationEntry] {
        let collected = Mutex<(entries: [RevocationEntry], error: (any Error)?)>(([], nil))
        collected.withLock { $0.entries.reserveCapacity(min(limit, 100_000)) }
        try await sqlite.stream(Self.revocationLogQuery, [.integer(Int(seq)), .integer(limit)]) { row in
            do {
                let entry = try RevocationLogRow(row).entry()
                collected.withLock { $0.entries.append(entry) }
            } catch {
                collected.withLock { if $0.error == nil { $0.error = error } }
            }
        }
        return try collected.withLock { state in
            if let error = state.error { throw error }
            return state.entries
        }
    }
}

/// One row of the revocation log as ``SQLAuthStore/revocationLogColumns`` selects it.
struct RevocationLogRow {
    let seq: Int64?
    let kind: String?
    /// The `jti`, `session_id` or `user_id`, parsed (nil when missing or not a UUID).
    let target: UUID?
    let value: Int64?
    let revokedAt: Int64?
    let actorId: String?
    let reason: String?
    /// The `kid` of a `key` row.
    let keyId: String?
}

extension RevocationLogRow {
    init(_ row: SQLiteRow) {
        func integer(_ name: String) -> Int64? {
            if case .integer(let value)? = row.column(name) { return Int64(value) }
            return nil
        }
        func text(_ name: String) -> String? {
            if case .text(let value)? = row.column(name) { return value }
            return nil
        }
        self.init(
            seq: integer("seq"), kind: text("kind"), target: text("target").flatMap { UUID(parsing: $0) }, value: integer("value"), revokedAt: integer("revoked_at"),
            actorId: text("actor_id"), reason: text("reason"), keyId: text("key_id")
        )
    }

    func entry() throws -> RevocationEntry {
        func present<Value>(_ value: Value?, _ name: String) throws -> Value {
            guard let value else { throw CorruptRow(description: "revocations.\(name) is missing or of the wrong type") }
            return value
        }
        func target() throws -> UUID {
            guard let uuid = self.target else { throw CorruptRow(description: "revocations target is missing or not a UUID") }
            return uuid
        }
        let kind: RevocationKind
        switch self.kind {
        case "token": kind = .token(jti: try target(), until: Column.date(try present(self.value, "until_at")))
        case "session": kind = .session(id: try target(), until: Column.date(try present(self.value, "until_at")))
        case "subject": kind = .subject(userId: try target(), acceptedFromVersion: try present(self.value, "accepted_from_version"))
        case "global": kind = .global(epoch: try present(self.value, "epoch"))
        case "key": kind = .key(kid: try present(self.keyId, "key_id"))
        case let other: throw CorruptRow(description: "unknown revocation kind \(other ?? "NULL")")
        }
        return RevocationEntry(
            seq: try present(self.seq, "seq"), kind: kind, revokedAt: Column.date(try present(self.revokedAt, "revoked_at")),
            actorId: self.actorId.flatMap { UUID(parsing: $0) }, reason: self.reason
        )
    }
}
