/// What came of presenting a refresh token.
public enum RefreshOutcome: Sendable {
    /// The token was live; its successor is stored.
    case rotated(SessionGrant)
    /// The token was spent moments ago by the same client and its successor is still current: the same successor
    /// is handed out again (a retry whose answer was lost, two requests at once).
    case retried(SessionGrant)
    /// The token had been spent before: theft. Its session is revoked by these rows.
    case reused(RevocationOutcome)
    /// Unknown token, or its session is no longer live.
    case invalid
}
