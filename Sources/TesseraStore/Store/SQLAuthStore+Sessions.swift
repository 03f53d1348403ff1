import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    /// A session is live while it is not invalidated, not expired, its user is active, and neither a subject nor a
    /// global revocation has cut off its token version or epoch. Used with `sessions s`, `users u`, `global_state g`.
    static let liveSessionCondition = """
        s.invalidated_at IS NULL AND u.is_active = 1 AND s.token_version >= u.accepted_from_version AND s.epoch >= g.accepted_epoch
        """

    public func openSession(_ session: NewSession, audit: AuditRecord) async throws -> SessionGrant {
        try await self.database.transaction { db in
            guard
                let row = try await db.raw(
                    """
                    SELECT \(unsafeRaw: Self.userColumns), token_version, (SELECT epoch FROM global_state WHERE id = 1) AS global_epoch
                    FROM users WHERE id = \(bind: Column.id(session.userId))
                    """
                ).first()
            else { throw AuthError.userNotFound }
            let user = try row.user()
            guard user.isActive else { throw AuthError.accountInactive }
            let version = try row.decode(column: "token_version", as: Int64.self)
            let epoch = try row.decode(column: "global_epoch", as: Int64.self)
            let created = Column.millis(session.createdAt)
            try await db.raw(
                """
                INSERT INTO sessions (id, user_id, refresh_token_hash, created_at, last_seen_at, expires_at, ip, user_agent, device_name,
                                      terminal_id, token_version, epoch)
                VALUES (\(bind: Column.id(session.id)), \(bind: Column.id(session.userId)), \(bind: session.refreshTokenHash), \(bind: created),
                        \(bind: created), \(bind: Column.millis(session.expiresAt)), \(bind: session.origin.ip), \(bind: session.origin.userAgent),
                        \(bind: session.origin.deviceName), \(bind: session.origin.terminalId), \(bind: version), \(bind: epoch))
                """
            ).run()
            try await Self.insertAudit(audit, on: db)
            let stored = Session(
                id: session.id, userId: session.userId, createdAt: Column.date(created), lastSeenAt: Column.date(created),
                expiresAt: session.expiresAt, ip: session.origin.ip, userAgent: session.origin.userAgent, deviceName: session.origin.deviceName,
                terminalId: session.origin.terminalId, tokenVersion: version, epoch: epoch
            )
            return SessionGrant(session: stored, user: user)
        }
    }

    /// Two refreshes of one token at once (two instances, two tabs, a phone that retried) take turns on the session's
    /// row: the second waits for the first to commit, then no longer finds the token current but spent, and is judged
    /// as a presentation of a spent token (``presentSpentToken(_:lock:on:)``) — the same client within the reuse
    /// interval is handed the session again, anyone else is a reuse; never a constraint violation. The update names the
    /// presented hash too, so it can only ever replace the token it was shown.
    public func rotateRefreshToken(_ rotation: RefreshRotation) async throws -> RefreshOutcome {
        let lock = self.database.rowLock(of: "s")
        let outcome = try await self.database.transaction { db -> RefreshOutcome in
            let now = Column.millis(rotation.now)
            let condition: SQLQueryString = "s.refresh_token_hash = \(bind: rotation.presentedHash)"
            guard let current = try await Self.lockedSession(condition, now: now, lock: lock, on: db) else {
                return try await Self.presentSpentToken(rotation, lock: lock, on: db)
            }
            guard current.live else { return .invalid }
            var grant = current.grant
            let updated = try await db.raw(
                """
                UPDATE sessions SET refresh_token_hash = \(bind: rotation.successorHash), last_seen_at = \(bind: now),
                       ip = COALESCE(\(bind: rotation.origin.ip), ip), user_agent = COALESCE(\(bind: rotation.origin.userAgent), user_agent)
                WHERE id = \(bind: Column.id(grant.session.id)) AND refresh_token_hash = \(bind: rotation.presentedHash)
                RETURNING id
                """
            ).first()
            guard updated != nil else { return try await Self.presentSpentToken(rotation, lock: lock, on: db) }
            // Who spent it, as hashes: what tells this client's retry from a replay elsewhere (``presentSpentToken``).
            try await db.raw(
                """
                INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at, user_agent_hash, client_nonce_hash)
                VALUES (\(bind: rotation.presentedHash), \(bind: Column.id(grant.session.id)), \(bind: now), \(bind: rotation.client.userAgentHash),
                        \(bind: rotation.client.nonceHash))
                """
            ).run()
            try await Self.insertAudit(
                AuditRecord(
                    at: rotation.now, event: .authRefresh, actorId: grant.user.id, subjectId: grant.user.id, sessionId: grant.session.id,
                    origin: rotation.origin
                ),
                on: db
            )
            grant.session.lastSeenAt = rotation.now
            return .rotated(grant)
        }
        if case .reused(let revoked) = outcome, !revoked.entries.isEmpty { self.database.announceRevocations() }
        return outcome
    }

    /// The session of one row (locked on PostgreSQL, `lock`) with its account, its current refresh token's hash,
    /// whether it was signed out, and whether it is live at `now`.
    private static func lockedSession(
        _ condition: SQLQueryString, now: Int64, lock: String, on db: any SQLDatabase
    ) async throws -> (grant: SessionGrant, refreshTokenHash: String, invalidated: Bool, live: Bool)? {
        let query: SQLQueryString =
            """
            SELECT s.*, u.email AS user_email, u.role AS user_role, u.is_active AS user_is_active, u.created_at AS user_created_at,
                   CASE WHEN \(unsafeRaw: Self.liveSessionCondition) AND s.expires_at > \(bind: now) THEN 1 ELSE 0 END AS live
            FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN global_state g
            WHERE
            """
        guard let row = try await db.raw(query + " " + condition + SQLQueryString(lock)).first() else { return nil }
        let session = try row.session()
        let user = User(
            id: session.userId,
            email: try row.decode(column: "user_email", as: String.self),
            role: Role(rawValue: try row.decode(column: "user_role", as: String.self)) ?? .user,
            isActive: try row.decode(column: "user_is_active", as: Int.self) == 1,
            createdAt: try row.date("user_created_at")
        )
        return (
            SessionGrant(session: session, user: user), try row.decode(column: "refresh_token_hash", as: String.self),
            try row.decode(column: "invalidated_at", as: Int64?.self) != nil, try row.decode(column: "live", as: Int.self) == 1
        )
    }

    /// A refresh token that is not current. Spent by the same client (same user agent and nonce) less than the reuse
    /// interval ago, with the successor it got then still current: a retry whose answer was lost, or a second
    /// request at once, handed the session again — the caller answers with the same, derived successor. Spent in any
    /// other way: someone holds a copy, so its session goes.
    ///
    /// The session's row is locked first (PostgreSQL), so that its successor cannot be spent between the check and
    /// the answer, and a reuse and a retry of one session take turns.
    private static func presentSpentToken(_ rotation: RefreshRotation, lock: String, on db: any SQLDatabase) async throws -> RefreshOutcome {
        guard
            let spent = try await db.raw(
                """
                SELECT session_id, spent_at, user_agent_hash, client_nonce_hash FROM spent_refresh_tokens
                WHERE token_hash = \(bind: rotation.presentedHash)
                """
            ).first()
        else { return .invalid }
        let sessionId = try spent.uuid("session_id")
        let now = Column.millis(rotation.now)
        let condition: SQLQueryString = "s.id = \(bind: Column.id(sessionId))"
        guard let session = try await Self.lockedSession(condition, now: now, lock: lock, on: db) else { return .invalid }
        let spender = RefreshRotation.Client(
            userAgentHash: try spent.decode(column: "user_agent_hash", as: String?.self),
            nonceHash: try spent.decode(column: "client_nonce_hash", as: String?.self)
        )
        let interval = Int64((rotation.reuseInterval.timeInterval * 1000).rounded())
        let spentAt = try spent.decode(column: "spent_at", as: Int64.self)
        let reason: String
        if interval <= 0 || now - spentAt >= interval {
            reason = "after_reuse_interval"
        } else if !spender.matches(rotation.client) {
            reason = "other_client"
        } else if session.refreshTokenHash != rotation.successorHash {
            // The successor was spent in turn (or the session re-keyed since): the token is older than the client's.
            reason = "successor_used"
        } else {
            // A retry of a session that has ended since is refused like any token of an ended session: no theft.
            guard session.live else { return .invalid }
            try await Self.insertAudit(
                AuditRecord(
                    at: rotation.now, event: .authRefresh, actorId: session.grant.user.id, subjectId: session.grant.user.id,
                    sessionId: sessionId, origin: rotation.origin, details: ["retry": "true"]
                ),
                on: db
            )
            return .retried(session.grant)
        }
        var entries: [RevocationEntry] = []
        if !session.invalidated {
            entries.append(
                try await Self.revokeSession(
                    sessionId, until: rotation.reuseRevocationUntil, at: rotation.now, cause: .refreshTokenReuse, actorId: nil,
                    reason: "refresh_token_reuse", on: db
                )
            )
        }
        try await Self.insertAudit(
            AuditRecord(
                at: rotation.now, event: .tokenReuseDetected, subjectId: session.grant.user.id, sessionId: sessionId, origin: rotation.origin,
                details: ["action": entries.isEmpty ? "session_already_revoked" : "session_revoked", "reason": reason]
            ),
            on: db
        )
        return .reused(RevocationOutcome(entries: entries))
    }

    /// The secret refresh-token successors are derived from, made by migration 13 (one per database).
    public func refreshSuccessorSecret() async throws -> String {
        try await self.database.read { db in
            guard let row = try await db.raw("SELECT secret FROM refresh_successor_secret WHERE id = 1").first() else {
                throw CorruptRow(description: "refresh_successor_secret has no row: the database was not migrated by this tessera")
            }
            return try row.decode(column: "secret", as: String.self)
        }
    }

    public func liveSessions(userId: UUID, now: Date) async throws -> [Session] {
        try await self.database.read { db in
            try await db.raw(
                """
                SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN global_state g
                WHERE s.user_id = \(bind: Column.id(userId)) AND s.expires_at > \(bind: Column.millis(now)) AND \(unsafeRaw: Self.liveSessionCondition)
                ORDER BY s.last_seen_at DESC, s.created_at DESC
                """
            ).all().map { try $0.session() }
        }
    }
}
