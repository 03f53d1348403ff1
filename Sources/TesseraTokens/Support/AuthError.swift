/// Every way an account, session or token operation can be refused. The server maps each case once to an HTTP
/// status and a stable problem `code`; the CLI to one line on stderr.
public enum AuthError: Error, Equatable, Sendable {
    /// Unknown email or wrong password; the two are never told apart.
    case invalidCredentials
    /// The account exists and the password is right, but it is deactivated.
    case accountInactive
    /// Too many failed sign-ins for this account recently.
    case tooManyAttempts(retryAfterSeconds: Int)
    /// Registration with an email that already has an account.
    case emailTaken
    /// Not an email address.
    case invalidEmail
    /// A password that does not meet the rules; the text says which.
    case weakPassword(String)
    /// A refresh token that is unknown, spent, expired or whose session was revoked.
    case invalidRefreshToken
    /// An access token that failed verification; the reason is for debug logs only, never for the client.
    case invalidToken(reason: String)
    /// A well-formed access token that was revoked.
    case tokenRevoked
    /// No such session among the caller's live sessions.
    case sessionNotFound
    /// No such API token among the caller's (or, for an operator, at all).
    case apiTokenNotFound
    /// No such user.
    case userNotFound
    /// The caller's token is valid but lacks the role for this.
    case forbidden
    /// An un-revoke with no revocation left to undo.
    case nothingToUndo
    /// An un-revoke whose target's latest cut was made for security (a password change, a sign-out, deactivation,
    /// reuse detection): such cuts are final, and nothing older may be undone past them.
    case cutIsFinal(cause: RevocationCause)
    /// An un-revoke for a deactivated account: activate it first.
    case accountInactiveCannotBeUnrevoked
    /// A query parameter or body field that is well-formed JSON but not an acceptable value.
    case invalidArgument(String)
    /// Too many password hashes are queued already (a sign-in storm): refused at once rather than queued for longer
    /// than a client waits.
    case busy(retryAfterSeconds: Int)
    /// The revocation index has not heard from the log within its bound: fail closed.
    case revocationIndexStale
    /// A signing secret shorter than the minimum.
    case weakSecret(minimumBytes: Int)
    /// Demoting or deleting the last active admin: no one could administer the service afterwards.
    case lastAdmin
    /// An admin deleting their own account through the admin route: one's own account is deleted with one's
    /// password (`DELETE /api/me`), whichever role one has.
    case ownAccountNeedsPassword
}
