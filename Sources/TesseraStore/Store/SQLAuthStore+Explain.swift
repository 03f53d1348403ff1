import Foundation
import SQLKit
import TesseraCore

/// The reads behind `explain`: a target's log rows with their causes, and a refresh token by its hash. Both are
/// answered by indexes the log and the sessions already have; neither writes anything.
extension SQLAuthStore {
    public func revocationHistory(of target: RevocationHistoryTarget) async throws -> [RevocationRecord] {
        let condition: SQLQueryString =
            switch target {
            case .token(let jti): "kind = 'token' AND jti = \(bind: Column.id(jti))"
            case .session(let id): "kind = 'session' AND session_id = \(bind: Column.id(id))"
            case .subject(let userId): "kind = 'subject' AND user_id = \(bind: Column.id(userId))"
            case .global: "kind = 'global'"
            case .key(let kid): "kind = 'key' AND key_id = \(bind: kid)"
            }
        let query: SQLQueryString = "SELECT \(unsafeRaw: Self.revocationLogColumns), cause FROM revocations WHERE " + condition + " ORDER BY seq"
        return try await self.database.read { db in
            try await db.raw(query).all().map { row in
                let entry = try RevocationLogRow(
                    seq: row.decode(column: "seq", as: Int64?.self), kind: row.decode(column: "kind", as: String?.self),
                    target: row.decode(column: "target", as: String?.self).flatMap { UUID(parsing: $0) }, value: row.decode(column: "value", as: Int64?.self),
                    revokedAt: row.decode(column: "revoked_at", as: Int64?.self), actorId: row.decode(column: "actor_id", as: String?.self),
                    reason: row.decode(column: "reason", as: String?.self), keyId: row.decode(column: "key_id", as: String?.self)
                ).entry()
                return RevocationRecord(entry: entry, cause: RevocationCause(stored: try row.decode(column: "cause", as: String?.self)))
            }
        }
    }

    public func refreshTokenRecord(hash: String) async throws -> RefreshTokenRecord? {
        let columns = "s.id, s.user_id, s.expires_at, s.token_version, s.epoch, s.invalidated_at, s.invalidated_reason"
        return try await self.database.read { db in
            let rows = try await db.raw(
                """
                SELECT \(unsafeRaw: columns), NULL AS spent_at FROM sessions s WHERE s.refresh_token_hash = \(bind: hash)
                UNION ALL
                SELECT \(unsafeRaw: columns), t.spent_at FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = \(bind: hash)
                """
            ).all()
            guard let row = rows.first else { return nil }
            guard let sessionId = UUID(parsing: try row.decode(column: "id", as: String.self)),
                let userId = UUID(parsing: try row.decode(column: "user_id", as: String.self))
            else { throw CorruptRow(description: "sessions.id or user_id is not a UUID") }
            return RefreshTokenRecord(
                sessionId: sessionId, userId: userId, expiresAt: Column.date(try row.decode(column: "expires_at", as: Int64.self)),
                tokenVersion: try row.decode(column: "token_version", as: Int64.self), epoch: try row.decode(column: "epoch", as: Int64.self),
                invalidatedAt: try row.decode(column: "invalidated_at", as: Int64?.self).map(Column.date),
                invalidatedReason: try row.decode(column: "invalidated_reason", as: String?.self),
                spentAt: try row.decode(column: "spent_at", as: Int64?.self).map(Column.date)
            )
        }
    }
}
