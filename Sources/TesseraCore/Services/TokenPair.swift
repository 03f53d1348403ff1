import Foundation
import TesseraTokens

/// What a sign-in, refresh or re-key hands the client: an access token, its refresh token and who it is for.
public struct TokenPair: Sendable {
    public var accessToken: String
    public var refreshToken: String
    public var tokenType: String = "Bearer"
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var sessionId: UUID
    public var user: User
    public var claims: AccessTokenClaims

    public init(accessToken: String, refreshToken: String, expiresIn: Int, sessionId: UUID, user: User, claims: AccessTokenClaims) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
        self.sessionId = sessionId
        self.user = user
        self.claims = claims
    }
}
