import Foundation

/// Dry runs of the operator actions: what a revoke, revoke-all, deactivation or un-revoke would cut or revive,
/// counted in one read of the store. Nothing is written — no log row, no audit row, no state — and the index is not
/// touched, so a dry run can be repeated at will and needs no confirmation.
extension AuthService {
    /// Counts what `action` would do, refusing exactly where the action would: ``AuthError/userNotFound`` for an
    /// unknown account and, for an un-revoke, ``AuthError/nothingToUndo``, ``AuthError/cutIsFinal(cause:)`` and
    /// ``AuthError/accountInactiveCannotBeUnrevoked`` (but, unlike the action, without an `UNREVOKE_REFUSED` row).
    public func dryRun(_ action: RevocationPreview.Action) async throws -> RevocationPreview {
        var action = action
        if case .revokeUsers(let userIds) = action {
            // As `revokeUsers`: an id named twice is one account, and an empty list cuts nothing.
            let unique = Array(Set(userIds))
            guard !unique.isEmpty else { return RevocationPreview(accounts: 0, sessions: 0, accessTokens: 0) }
            action = .revokeUsers(unique)
        }
        let now = self.clock.now()
        // An access token issued at or before this instant has expired by now, leeway included.
        let expiredIfIssuedBefore = now.addingTimeInterval(-(self.settings.accessTokenTTL + self.settings.leeway).timeInterval)
        return try await self.store.preview(action, now: now, accessTokensIssuedAfter: expiredIfIssuedBefore)
    }
}
