import Foundation
import JWTKit
import TesseraTokens

/// Issues access tokens with the ring's current key, header `typ: at+jwt` (RFC 9068) and `kid`.
public struct AccessTokenSigner: Sendable {
    let keys: KeyRing
    let settings: TokenSettings

    public init(keys: KeyRing, settings: TokenSettings) {
        self.keys = keys
        self.settings = settings
    }

    public init(key: SigningKey, settings: TokenSettings) {
        self.init(keys: KeyRing(key: key), settings: settings)
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
        let key = self.keys.snapshot.signingKey(at: now)
        guard let signer = key.signer else { throw StoreUnavailable("the current signing key's private half is not available here") }
        let token = try await signer.sign(claims, kid: JWKIdentifier(string: key.kid), header: header)
        return (token, claims)
    }
}
