import Foundation
import JWTKit

/// Checks an access token: shape, pinned algorithm and type, signature, issuer, audience and times.
///
/// The algorithm is pinned to HS256 before any key is consulted, so `alg: none`, `HS384` or an asymmetric
/// algorithm never reaches a verifier (RFC 8725 §3.1); `typ` must be `at+jwt` so that no other kind of JWT
/// signed with the same key passes for an access token (RFC 8725 §3.11).
public struct AccessTokenVerifier: Sendable {
    /// The only `alg` accepted.
    public static let algorithm = "HS256"
    /// The `typ` written and required (RFC 9068).
    public static let tokenType = "at+jwt"
    /// Longer tokens are refused unread; ours are about 450 bytes.
    public static let maximumTokenLength = 4096

    struct Header: Decodable {
        var alg: String?
        var typ: String?
        var crit: [String]?
    }

    let key: SigningKey
    let settings: TokenSettings

    public init(key: SigningKey, settings: TokenSettings) {
        self.key = key
        self.settings = settings
    }

    /// Verifies a token; throws ``AuthError/invalidToken(reason:)`` with a reason for the debug log.
    public func verify(_ token: String, now: Date) async throws(AuthError) -> VerifiedAccessToken {
        guard token.utf8.count <= Self.maximumTokenLength else { throw .invalidToken(reason: "token too long") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            throw .invalidToken(reason: "not a signed JWT")
        }
        guard let headerData = Base64URL.decode(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { throw .invalidToken(reason: "malformed header") }
        guard header.alg == Self.algorithm else { throw .invalidToken(reason: "algorithm not allowed") }
        guard let typ = header.typ?.lowercased(), typ == Self.tokenType || typ == "application/" + Self.tokenType else {
            throw .invalidToken(reason: "not an access token")
        }
        guard header.crit == nil else { throw .invalidToken(reason: "unsupported critical header") }

        let claims: AccessTokenClaims
        do {
            claims = try await self.key.keys.verify(token, as: AccessTokenClaims.self)
        } catch {
            throw .invalidToken(reason: "bad signature or claims")
        }
        return try self.check(claims, now: now)
    }

    func check(_ claims: AccessTokenClaims, now: Date) throws(AuthError) -> VerifiedAccessToken {
        let nowSeconds = now.timeIntervalSince1970
        let leeway = self.settings.leeway.timeInterval
        guard claims.iss == self.settings.issuer else { throw .invalidToken(reason: "wrong issuer") }
        guard claims.aud == self.settings.audience else { throw .invalidToken(reason: "wrong audience") }
        guard Double(claims.exp) + leeway > nowSeconds else { throw .invalidToken(reason: "expired") }
        guard Double(claims.iat) - leeway <= nowSeconds else { throw .invalidToken(reason: "issued in the future") }
        if let nbf = claims.nbf {
            guard Double(nbf) - leeway <= nowSeconds else { throw .invalidToken(reason: "not yet valid") }
        }
        guard let userId = UUID(uuidString: claims.sub), let sessionId = UUID(uuidString: claims.sid),
            let jti = UUID(uuidString: claims.jti)
        else { throw .invalidToken(reason: "malformed sub, sid or jti") }
        guard let role = Role(rawValue: claims.role) else { throw .invalidToken(reason: "unknown role") }
        return VerifiedAccessToken(
            userId: userId,
            sessionId: sessionId,
            jti: jti,
            role: role,
            version: claims.ver,
            epoch: claims.epoch,
            issuedAt: Date(timeIntervalSince1970: TimeInterval(claims.iat)),
            expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.exp))
        )
    }
}
