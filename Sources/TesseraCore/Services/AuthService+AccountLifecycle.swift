import Foundation
import Logging
import TesseraTokens

/// Role changes and account deletion: each one transaction in the store that cuts every token of the account, then
/// applied to the local index before returning, as every revocation is (read-your-writes).
extension AuthService {
    /// Gives an account a role. A change revokes every token of the account at once, with a final cut: a token must
    /// never carry a role its holder no longer has; the next sign-in or refresh carries the new role. The same role
    /// again is a no-op that writes and revokes nothing. Refuses demoting the last active admin (``AuthError/lastAdmin``).
    public func changeRole(userId: UUID, to role: Role, actorId: UUID?, origin: RequestOrigin) async throws -> RoleChangeOutcome {
        let now = self.clock.now()
        let outcome = try await self.store.changeRole(RoleChange(userId: userId, role: role, actorId: actorId, at: now, origin: origin))
        if outcome.changed {
            self.applyCut(outcome.entries, at: now, reason: "role_changed")
            self.logger.info(
                "role changed", metadata: ["user": "\(userId.lowercasedString)", "from": "\(outcome.previousRole.rawValue)", "to": "\(role.rawValue)"]
            )
        }
        return outcome
    }

    /// Deletes the caller's own account after checking its password (a wrong one counts as a failed sign-in, as for a
    /// password change): ``deleteAccount(userId:actorId:origin:)`` with the caller as actor.
    public func deleteOwnAccount(_ caller: VerifiedAccessToken, password: String, origin: RequestOrigin) async throws {
        let now = self.clock.now()
        try await self.checkCurrentPassword(of: caller, password: password, origin: origin, now: now)
        try await self.erase(AccountDeletion(userId: caller.userId, actorId: caller.userId, at: now, origin: origin))
    }

    /// Deletes an account: every token and session of it is revoked at once (a final cut), its email and personal data
    /// are erased, and its row stays as a tombstone with its id, so that audit rows still point at something. The
    /// address can be registered again, as a new account. `actorId` is the admin (nil for the command line); an admin
    /// deletes their own account with their password (``deleteOwnAccount(_:password:origin:)``), never here
    /// (``AuthError/ownAccountNeedsPassword``). Refuses the last active admin (``AuthError/lastAdmin``).
    public func deleteAccount(userId: UUID, actorId: UUID?, origin: RequestOrigin) async throws {
        if let actorId, actorId == userId { throw AuthError.ownAccountNeedsPassword }
        try await self.erase(AccountDeletion(userId: userId, actorId: actorId, at: self.clock.now(), origin: origin))
    }

    private func erase(_ deletion: AccountDeletion) async throws {
        let outcome = try await self.store.deleteAccount(deletion)
        self.applyCut(outcome.entries, at: deletion.at, reason: "account_deleted")
        self.logger.info("account deleted", metadata: ["user": "\(deletion.userId.lowercasedString)"])
    }

    /// Checks the caller's current password, throttled as a sign-in is: a stolen access token alone must not be
    /// enough to change or delete the account.
    func checkCurrentPassword(of caller: VerifiedAccessToken, password: String, origin: RequestOrigin, now: Date) async throws {
        guard let user = try await self.store.user(id: caller.userId), let normalized = Credentials.normalize(email: user.email),
            let credentials = try await self.store.credentials(normalizedEmail: normalized)
        else { throw AuthError.userNotFound }
        let attempt = LoginThrottle.Attempt(account: normalized, address: origin.ip)
        try await self.throttle.admit(attempt, now: now)
        guard try await self.checkPassword(password, against: credentials.passwordHash) else {
            try await self.throttle.recordFailure(attempt, now: now)
            throw AuthError.invalidCredentials
        }
    }

    private func applyCut(_ entries: [RevocationEntry], at now: Date, reason: String) {
        self.index.apply(entries, now: now)
        self.metrics.countRevocations(entries)
        self.logger.info("revoked", metadata: ["kind": "subject", "rows": "\(entries.count)", "reason": "\(reason)"])
    }
}
