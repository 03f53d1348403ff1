import Foundation

/// The claims of a Tessera access token as they travel in the JWT.
///
/// Times are whole seconds since 1970. Checks of time, issuer and audience are made by ``AccessTokenVerifier``
/// against its own clock, not here.
public struct AccessTokenClaims: Codable, Sendable, Equatable {
    public var iss: String
    public var aud: String
    public var sub: String
    public var sid: String
    public var jti: String
    public var iat: Int64
    public var nbf: Int64?
    public var exp: Int64
    public var ver: Int64
    public var epoch: Int64
    public var role: String

    public init(
        iss: String, aud: String, sub: String, sid: String, jti: String, iat: Int64, nbf: Int64?, exp: Int64, ver: Int64, epoch: Int64, role: String
    ) {
        self.iss = iss
        self.aud = aud
        self.sub = sub
        self.sid = sid
        self.jti = jti
        self.iat = iat
        self.nbf = nbf
        self.exp = exp
        self.ver = ver
        self.epoch = epoch
        self.role = role
    }
}

extension ParsedClaims {
    /// The claims the general decoder read; nil when `sub`, `sid` or `jti` is not a UUID.
    init?(_ claims: AccessTokenClaims) {
        guard let sub = UUID(parsing: claims.sub), let sid = UUID(parsing: claims.sid), let jti = UUID(parsing: claims.jti) else { return nil }
        self.init(
            iss: claims.iss, aud: claims.aud, sub: sub, sid: sid, jti: jti, iat: claims.iat, nbf: claims.nbf, exp: claims.exp, ver: claims.ver,
            epoch: claims.epoch, role: claims.role
        )
    }
}
