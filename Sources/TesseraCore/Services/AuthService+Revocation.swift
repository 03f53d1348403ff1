import Foundation
import Logging
import TesseraTokens

/// Sign-out in all its forms, password changes and operator revocations: each one transaction in the store,
/// then applied to the local index before returning (read-your-writes).
extension AuthService {
    /// Signs out the caller's session: every access token of it and its refresh token stop working.
    public func logout(_ caller: VerifiedAccessToken, origin: RequestOrigin) async throws {
        try await self.revokeSession(caller.sessionId, of: caller, details: ["event": "logout"], origin: origin)
    }

    /// Signs out one of the caller's own sessions; ``AuthError/sessionNotFound`` for any other id.
    public func revokeOwnSession(_ sessionId: UUID, caller: VerifiedAccessToken, origin: RequestOrigin) async throws {
        let live = try await self.store.liveSessions(userId: caller.userId, now: self.clock.now())
        guard live.contains(where: { $0.id == sessionId }) else { throw AuthError.sessionNotFound }
        var details = ["event": "logout"]
        if sessionId != caller.sessionId { details["initiatedBy"] = caller.sessionId.lowercasedString }
        try await self.revokeSession(sessionId, of: caller, details: details, origin: origin)
    }

    private func revokeSession(_ sessionId: UUID, of caller: VerifiedAccessToken, details: [String: String], origin: RequestOrigin) async throws {
        let now = self.clock.now()
        let audit = AuditRecord(
            at: now, event: .authLogout, actorId: caller.userId, subjectId: caller.userId, sessionId: sessionId, origin: origin, details: details
        )
        let request = RevocationRequest(
            target: .session(sessionId, until: self.settings.accessTokensIssued(before: now)), cause: .signOut,
            actorId: caller.userId, reason: "logout", at: now, audit: [audit]
        )
        try await self.commit(request)
    }

    /// Signs the caller out everywhere: every token of the user, on every device.
    public func logoutAll(_ caller: VerifiedAccessToken, origin: RequestOrigin) async throws {
        let now = self.clock.now()
        let audit = AuditRecord(
            at: now, event: .authLogout, actorId: caller.userId, subjectId: caller.userId, sessionId: caller.sessionId, origin: origin,
            details: ["event": "logout_all"]
        )
        try await self.commit(
            RevocationRequest(
                target: .subjects([caller.userId]), cause: .signOutEverywhere, actorId: caller.userId, reason: "logout_all", at: now, audit: [audit]
            )
        )
    }

    /// Signs out every other device: every token of the user is revoked, and this session is re-keyed with a fresh pair.
    public func logoutOthers(_ caller: VerifiedAccessToken, origin: RequestOrigin) async throws -> TokenPair {
        let now = self.clock.now()
        let audit = AuditRecord(
            at: now, event: .authLogout, actorId: caller.userId, subjectId: caller.userId, sessionId: caller.sessionId, origin: origin,
            details: ["event": "logout_others"]
        )
        return try await self.revokeAndReissue(
            caller: caller, cause: .signOutOthers, reason: "logout_others", audit: audit, newPasswordHash: nil, now: now
        )
    }

    /// Changes the caller's password after checking the current one; every other token is revoked and the caller
    /// gets a fresh pair for this session.
    public func changePassword(_ caller: VerifiedAccessToken, currentPassword: String, newPassword: String, origin: RequestOrigin) async throws -> TokenPair {
        let now = self.clock.now()
        try await self.checkCurrentPassword(of: caller, password: currentPassword, origin: origin, now: now)
        try Credentials.validate(password: newPassword)
        let newHash = try await self.hasher.hash(newPassword)
        let audit = AuditRecord(
            at: now, event: .passwordChanged, actorId: caller.userId, subjectId: caller.userId, sessionId: caller.sessionId, origin: origin
        )
        return try await self.revokeAndReissue(caller: caller, cause: .passwordChanged, reason: "password_changed", audit: audit, newPasswordHash: newHash, now: now)
    }

    private func revokeAndReissue(
        caller: VerifiedAccessToken, cause: RevocationCause, reason: String, audit: AuditRecord, newPasswordHash: String?, now: Date
    ) async throws -> TokenPair {
        try await self.ensureSigningKey(now: now)
        let refreshToken = OpaqueToken.generate()
        let request = RevocationRequest(
            target: .subjects([caller.userId]), cause: cause, actorId: caller.userId, reason: reason, at: now, audit: [audit],
            newPasswordHash: newPasswordHash, reissue: (caller.sessionId, OpaqueToken.hash(refreshToken))
        )
        let outcome = try await self.commit(request)
        guard let grant = outcome.reissued else { throw AuthError.tokenRevoked }
        return try await self.issuePair(for: grant, refreshToken: refreshToken, now: now)
    }

    // MARK: Operators

    /// Revokes every token of each listed user in one transaction and one audit row. Returns how many were revoked.
    @discardableResult
    public func revokeUsers(_ userIds: [UUID], actorId: UUID?, reason: String?, origin: RequestOrigin) async throws -> Int {
        let unique = Array(Set(userIds)).sorted { $0.uuidString < $1.uuidString }
        guard !unique.isEmpty else { return 0 }
        for id in unique where try await self.store.user(id: id) == nil { throw AuthError.userNotFound }
        let now = self.clock.now()
        var details = ["userIds": unique.map { $0.lowercasedString }.joined(separator: ","), "count": "\(unique.count)"]
        if let reason { details["reason"] = reason }
        let audit = AuditRecord(
            at: now, event: .revokeUsers, actorId: actorId, subjectId: unique.count == 1 ? unique[0] : nil,
            subjectIds: unique.count > 1 ? unique : [], origin: origin, details: details
        )
        let outcome = try await self.commit(RevocationRequest(target: .subjects(unique), cause: .adminRevoke, actorId: actorId, reason: reason, at: now, audit: [audit]))
        return outcome.entries.count
    }

    /// Revokes every token of every user issued before now. Returns the new global epoch.
    @discardableResult
    public func revokeAll(actorId: UUID?, reason: String?, origin: RequestOrigin) async throws -> Int64 {
        let now = self.clock.now()
        var details: [String: String] = [:]
        if let reason { details["reason"] = reason }
        let audit = AuditRecord(at: now, event: .revokeAll, actorId: actorId, origin: origin, details: details)
        let outcome = try await self.commit(RevocationRequest(target: .global, cause: .revokeAll, actorId: actorId, reason: reason, at: now, audit: [audit]))
        guard case .global(let epoch) = outcome.entries.first?.kind else { return 0 }
        return epoch
    }

    /// Writes a revocation and applies its rows to the local index before returning.
    @discardableResult
    func commit(_ request: RevocationRequest) async throws -> RevocationOutcome {
        let outcome = try await self.store.revoke(request)
        self.index.apply(outcome.entries, now: request.at)
        self.metrics.countRevocations(outcome.entries)
        var metadata: Logger.Metadata = [
            "kind": "\(outcome.entries.first?.kind.name ?? "none")", "rows": "\(outcome.entries.count)", "reason": "\(request.reason ?? "")",
        ]
        if let first = outcome.entries.first?.seq, let last = outcome.entries.last?.seq {
            metadata["seq"] = "\(first)"
            if last != first { metadata["lastSeq"] = "\(last)" }
        }
        self.logger.info("revoked", metadata: metadata)
        return outcome
    }
}
