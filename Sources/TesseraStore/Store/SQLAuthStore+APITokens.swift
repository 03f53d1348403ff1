import Foundation
import SQLKit
import TesseraCore

/// Personal API tokens (`api_tokens`, migration 11): only hashes are kept. A token is taken back through the
/// revocation log like every other cut: its revoke is a `token` row with its id as `jti`, so every instance's index
/// refuses it at once; a user's or everyone's cut refuses it by its token version and epoch.
extension SQLAuthStore {
    static let apiTokenColumns = """
        t.id, t.user_id, t.name, t.role, t.token_version, t.epoch, t.created_at, t.ip, t.user_agent, t.last_used_at, t.expires_at,
        t.invalidated_at,
        CASE WHEN t.token_version < u.accepted_from_version OR u.is_active = 0 OR u.deleted_at IS NOT NULL THEN 1 ELSE 0 END AS cut_by_account
        """

    /// `api_tokens t` with its account, whose state decides too (``APITokenRecord/cutByAccount``).
    static let apiTokenSource = "api_tokens t JOIN users u ON u.id = t.user_id"

    /// At most this many live (not revoked, not expired) tokens per account, and this many made per account in a
    /// day: every revoked token is an entry in every instance's index and every guard until it expires, and a
    /// loop of create-and-revoke must not grow them without bound.
    public static let maximumLiveAPITokens = 50
    public static let maximumAPITokensPerDay = 100

    public func createAPIToken(_ token: NewAPIToken, audit: AuditRecord) async throws -> APITokenRecord {
        let lock = self.database.rowLock
        return try await self.database.transaction { db in
            // The account's row is locked, so that a cut of the user commits either before (and this token is made at
            // the new version) or after (and cuts it).
            guard
                let row = try await db.raw(
                    """
                    SELECT role, is_active, token_version, (SELECT epoch FROM global_state WHERE id = 1) AS global_epoch
                    FROM users WHERE id = \(bind: Column.id(token.userId)) \(unsafeRaw: lock)
                    """
                ).first()
            else { throw AuthError.userNotFound }
            guard try row.decode(column: "is_active", as: Int.self) != 0 else { throw AuthError.accountInactive }
            let roleName = try row.decode(column: "role", as: String.self)
            guard let role = Role(rawValue: roleName) else { throw CorruptRow(description: "unknown role \(roleName)") }
            let version = try row.decode(column: "token_version", as: Int64.self)
            let epoch = try row.decode(column: "global_epoch", as: Int64.self)
            let now = Column.millis(token.createdAt)
            let counts = try await db.raw(
                """
                SELECT
                  (SELECT COUNT(*) FROM api_tokens WHERE user_id = \(bind: Column.id(token.userId)) AND invalidated_at IS NULL AND expires_at > \(bind: now)) AS live,
                  (SELECT COUNT(*) FROM api_tokens WHERE user_id = \(bind: Column.id(token.userId)) AND created_at > \(bind: now - 86_400_000)) AS today
                """
            ).first()
            if let counts {
                if try counts.decode(column: "live", as: Int.self) >= Self.maximumLiveAPITokens {
                    throw AuthError.invalidArgument("an account may hold at most \(Self.maximumLiveAPITokens) live API tokens; revoke one first")
                }
                if try counts.decode(column: "today", as: Int.self) >= Self.maximumAPITokensPerDay {
                    throw AuthError.invalidArgument("an account may make at most \(Self.maximumAPITokensPerDay) API tokens a day")
                }
            }
            try await db.raw(
                """
                INSERT INTO api_tokens (id, user_id, name, token_hash, role, token_version, epoch, created_at, ip, user_agent, expires_at)
                VALUES (\(bind: Column.id(token.id)), \(bind: Column.id(token.userId)), \(bind: token.name), \(bind: token.tokenHash),
                        \(bind: role.rawValue), \(bind: version), \(bind: epoch), \(bind: Column.millis(token.createdAt)), \(bind: token.origin.ip),
                        \(bind: token.origin.userAgent), \(bind: Column.millis(token.expiresAt)))
                """
            ).run()
            try await Self.insertAudit(audit, on: db)
            return APITokenRecord(
                id: token.id, userId: token.userId, name: token.name, role: role, tokenVersion: version, epoch: epoch,
                createdAt: Column.date(Column.millis(token.createdAt)), ip: token.origin.ip, userAgent: token.origin.userAgent, lastUsedAt: nil,
                expiresAt: Column.date(Column.millis(token.expiresAt)), invalidatedAt: nil
            )
        }
    }

    public func apiToken(hash: String) async throws -> APITokenRecord? {
        try await self.database.read { db in
            try await db.raw("SELECT \(unsafeRaw: Self.apiTokenColumns) FROM \(unsafeRaw: Self.apiTokenSource) WHERE t.token_hash = \(bind: hash)").first()?.apiToken()
        }
    }

    public func apiToken(id: UUID) async throws -> APITokenRecord? {
        try await self.database.read { db in
            try await db.raw("SELECT \(unsafeRaw: Self.apiTokenColumns) FROM \(unsafeRaw: Self.apiTokenSource) WHERE t.id = \(bind: Column.id(id))").first()?.apiToken()
        }
    }

    public func apiTokens(userId: UUID) async throws -> [APITokenRecord] {
        try await self.database.read { db in
            try await db.raw(
                "SELECT \(unsafeRaw: Self.apiTokenColumns) FROM \(unsafeRaw: Self.apiTokenSource) WHERE t.user_id = \(bind: Column.id(userId)) ORDER BY t.created_at DESC, t.id"
            ).all().map { try $0.apiToken() }
        }
    }

    public func revokeAPIToken(id: UUID, request: RevocationRequest) async throws -> RevocationOutcome? {
        let outcome = try await self.database.transaction { db -> RevocationOutcome? in
            guard
                let row = try await db.raw(
                    """
                    UPDATE api_tokens SET invalidated_at = \(bind: Column.millis(request.at))
                    WHERE id = \(bind: Column.id(id)) AND invalidated_at IS NULL
                    RETURNING expires_at
                    """
                ).first()
            else { return nil }
            let expires = Column.date(try row.decode(column: "expires_at", as: Int64.self))
            let entry = try await Self.appendEntry(
                .token(jti: id, until: expires), cause: request.cause, at: request.at, actorId: request.actorId, reason: request.reason, on: db
            )
            for record in request.audit {
                try await Self.insertAudit(record, on: db)
            }
            return RevocationOutcome(entries: [entry])
        }
        if outcome != nil { self.database.announceRevocations() }
        return outcome
    }

    public func recordAPITokenUse(_ uses: [UUID: Date]) async throws {
        guard !uses.isEmpty else { return }
        try await self.database.transaction { db in
            for (id, at) in uses.sorted(by: { Column.id($0.key) < Column.id($1.key) }) {
                // Never moves back: two instances flush in any order.
                try await db.raw(
                    """
                    UPDATE api_tokens SET last_used_at = \(bind: Column.millis(at))
                    WHERE id = \(bind: Column.id(id)) AND (last_used_at IS NULL OR last_used_at < \(bind: Column.millis(at)))
                    """
                ).run()
            }
        }
    }
}

extension SQLRow {
    /// Reads an `api_tokens` row as ``SQLAuthStore/apiTokenColumns`` selects it.
    func apiToken() throws -> APITokenRecord {
        let roleName = try self.decode(column: "role", as: String.self)
        guard let role = Role(rawValue: roleName) else { throw CorruptRow(description: "unknown role \(roleName)") }
        return APITokenRecord(
            id: try self.uuid("id"), userId: try self.uuid("user_id"), name: try self.decode(column: "name", as: String.self), role: role,
            tokenVersion: try self.decode(column: "token_version", as: Int64.self), epoch: try self.decode(column: "epoch", as: Int64.self),
            createdAt: try self.date("created_at"), ip: try self.decode(column: "ip", as: String?.self),
            userAgent: try self.decode(column: "user_agent", as: String?.self), lastUsedAt: try self.optionalDate("last_used_at"),
            expiresAt: try self.date("expires_at"), invalidatedAt: try self.optionalDate("invalidated_at"),
            cutByAccount: try self.decode(column: "cut_by_account", as: Int.self) != 0
        )
    }
}
