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

    /// Two refreshes of one token at once (two instances, or a phone that retried) take turns on the session's row:
    /// the second waits for the first to commit, then no longer finds the token current, finds it spent, and is
    /// answered as a reuse (which it is) — never a constraint violation. The update names the presented hash too, so
    /// it can only ever replace the token it was shown.
    public func rotateRefreshToken(_ rotation: RefreshRotation) async throws -> RefreshOutcome {
        let lock = self.database.rowLock(of: "s")
        let outcome = try await self.database.transaction { db -> RefreshOutcome in
            let now = Column.millis(rotation.now)
            let row = try await db.raw(
                """
                SELECT s.*, u.email AS user_email, u.role AS user_role, u.is_active AS user_is_active, u.created_at AS user_created_at,
                       CASE WHEN \(unsafeRaw: Self.liveSessionCondition) AND s.expires_at > \(bind: now) THEN 1 ELSE 0 END AS live
                FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN global_state g
                WHERE s.refresh_token_hash = \(bind: rotation.presentedHash)\(unsafeRaw: lock)
                """
            ).first()
            guard let row else {
                return try await Self.handleSpentToken(rotation, on: db)
            }
            guard try row.decode(column: "live", as: Int.self) == 1 else { return .invalid }
            var session = try row.session()
            let user = User(
                id: session.userId,
                email: try row.decode(column: "user_email", as: String.self),
                role: Role(rawValue: try row.decode(column: "user_role", as: String.self)) ?? .user,
                isActive: true,
                createdAt: try row.date("user_created_at")
            )
            let updated = try await db.raw(
                """
                UPDATE sessions SET refresh_token_hash = \(bind: rotation.successorHash), last_seen_at = \(bind: now),
                       ip = COALESCE(\(bind: rotation.origin.ip), ip), user_agent = COALESCE(\(bind: rotation.origin.userAgent), user_agent)
                WHERE id = \(bind: Column.id(session.id)) AND refresh_token_hash = \(bind: rotation.presentedHash)
                RETURNING id
                """
            ).first()
            guard updated != nil else { return try await Self.handleSpentToken(rotation, on: db) }
            try await db.raw(
                """
                INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
                VALUES (\(bind: rotation.presentedHash), \(bind: Column.id(session.id)), \(bind: now))
                """
            ).run()
            try await Self.insertAudit(
                AuditRecord(at: rotation.now, event: .authRefresh, actorId: user.id, subjectId: user.id, sessionId: session.id, origin: rotation.origin),
                on: db
            )
            session.lastSeenAt = rotation.now
            return .rotated(SessionGrant(session: session, user: user))
        }
        if case .reused(let revoked) = outcome, !revoked.entries.isEmpty { self.database.announceRevocations() }
        return outcome
    }

    /// A refresh token that is not current: if it was spent before, someone holds a copy, so its session goes.
    private static func handleSpentToken(_ rotation: RefreshRotation, on db: any SQLDatabase) async throws -> RefreshOutcome {
        guard
            let spent = try await db.raw(
                """
                SELECT t.session_id, s.user_id, s.invalidated_at FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id
                WHERE t.token_hash = \(bind: rotation.presentedHash)
                """
            ).first()
        else { return .invalid }
        let sessionId = try spent.uuid("session_id")
        let userId = try spent.uuid("user_id")
        var entries: [RevocationEntry] = []
        if try spent.decode(column: "invalidated_at", as: Int64?.self) == nil {
            entries.append(
                try await Self.revokeSession(
                    sessionId, until: rotation.reuseRevocationUntil, at: rotation.now, cause: .refreshTokenReuse, actorId: nil,
                    reason: "refresh_token_reuse", on: db
                )
            )
        }
        try await Self.insertAudit(
            AuditRecord(
                at: rotation.now, event: .tokenReuseDetected, subjectId: userId, sessionId: sessionId, origin: rotation.origin,
                details: ["action": entries.isEmpty ? "session_already_revoked" : "session_revoked"]
            ),
            on: db
        )
        return .reused(RevocationOutcome(entries: entries))
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
