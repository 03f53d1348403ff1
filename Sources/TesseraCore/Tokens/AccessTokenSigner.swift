import Foundation
import JWTKit

/// Issues HS256 access tokens with header `typ: at+jwt` (RFC 9068).
public struct AccessTokenSigner: Sendable {
    let key: SigningKey
    let settings: TokenSettings

    public init(key: SigningKey, settings: TokenSettings) {
        self.key = key
        self.settings = settings
    }

    /// Signs an access token for this session at its recorded token version and epoch.
    public func sign(user: User, session: Session, now: Date) async throws -> (token: String, claims: AccessTokenClaims) {
        let issuedAt = Int64(now.timeIntervalSince1970.rounded(.down))
        let claims = AccessTokenClaims(
            iss: self.settings.issuer,
            aud: self.settings.audience,
            sub: user.id.lowercasedString,
            sid: session.id.lowercasedString,
            jti: UUID().lowercasedString,
            iat: issuedAt,
            nbf: issuedAt,
            exp: issuedAt + Int64(self.settings.accessTokenTTL.components.seconds),
            ver: session.tokenVersion,
            epoch: session.epoch,
            role: user.role.rawValue
        )
        var header = JWTHeader()
        header.typ = AccessTokenVerifier.tokenType
        let token = try await self.key.keys.sign(claims, header: header)
        return (token, claims)
    }
}
