import Foundation
import SQLiteNIO
import Synchronization
import TesseraCore

/// Reading the revocation log fast on SQLite: a server starting on a log of a million rows reads them all before
/// it answers. Through SQLKit's decoders that took about 7 s; here each row is read from SQLiteNIO's values
/// directly as it is stepped, and the kind-specific columns are folded into two in SQL.
extension SQLAuthStore {
    static let revocationLogQuery = """
        SELECT seq, kind,
               CASE kind WHEN 'token' THEN jti WHEN 'session' THEN session_id ELSE user_id END AS target,
               CASE kind WHEN 'subject' THEN accepted_from_version WHEN 'global' THEN epoch ELSE until_at END AS value,
               revoked_at, actor_id, reason
        FROM revocations WHERE seq > ?1 ORDER BY seq LIMIT ?2
        """

    static func revocations(after seq: Int64, limit: Int, on sqlite: SQLiteDatabaseHandle) async throws -> [RevocationEntry] {
        let collected = Mutex<(entries: [RevocationEntry], error: (any Error)?)>(([], nil))
        collected.withLock { $0.entries.reserveCapacity(min(limit, 100_000)) }
        try await sqlite.stream(Self.revocationLogQuery, [.integer(Int(seq)), .integer(limit)]) { row in
            do {
                let entry = try Self.revocationEntry(row)
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

    /// One row of ``revocationLogQuery``.
    static func revocationEntry(_ row: SQLiteRow) throws -> RevocationEntry {
        func integer(_ name: String) throws -> Int64 {
            guard case .integer(let value)? = row.column(name) else { throw CorruptRow(description: "revocations.\(name) is not an integer") }
            return Int64(value)
        }
        func text(_ name: String) -> String? {
            if case .text(let value)? = row.column(name) { return value }
            return nil
        }
        func uuid(_ name: String) throws -> UUID {
            guard let text = text(name), let uuid = UUID(parsing: text) else { throw CorruptRow(description: "revocations.\(name) is not a UUID") }
            return uuid
        }
        let kind: RevocationKind
        switch text("kind") {
        case "token": kind = .token(jti: try uuid("target"), until: Column.date(try integer("value")))
        case "session": kind = .session(id: try uuid("target"), until: Column.date(try integer("value")))
        case "subject": kind = .subject(userId: try uuid("target"), acceptedFromVersion: try integer("value"))
        case "global": kind = .global(epoch: try integer("value"))
        case let other: throw CorruptRow(description: "unknown revocation kind \(other ?? "NULL")")
        }
        return RevocationEntry(
            seq: try integer("seq"), kind: kind, revokedAt: Column.date(try integer("revoked_at")),
            actorId: text("actor_id").flatMap { UUID(parsing: $0) }, reason: text("reason")
        )
    }
}
