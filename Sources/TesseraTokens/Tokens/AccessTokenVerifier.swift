import Crypto
import Foundation

/// Checks an access token: shape, pinned algorithm and type, signature, issuer, audience and times.
///
/// The algorithm is pinned to the configured one (`JWT_ALGORITHM`) before any key is consulted, so `alg: none`,
/// `HS384`, or HS256 signed with a published public key never reaches a verifier (RFC 8725 §3.1); `kid` must name a
/// key of the ring; `typ` must be `at+jwt` so that no other kind of JWT signed with the same key passes for an
/// access token (RFC 8725 §3.11). An HMAC is compared in constant time; every signature is checked before the
/// payload is parsed, so the claims parser only ever reads payloads we signed.
public struct AccessTokenVerifier: Sendable {
    /// The `typ` written and required (RFC 9068).
    public static let tokenType = "at+jwt"
    /// Longer tokens are refused unread; ours are about 450 bytes.
    public static let maximumTokenLength = BearerToken.maximumTokenLength

    struct Header: Decodable {
        var alg: String?
        var kid: String?
        var typ: String?
        var crit: [String]?
    }

    let keys: any VerificationKeySource
    let settings: TokenSettings
    let cache: VerifiedTokenCache?

    /// - Parameter cacheCapacity: how many verified tokens to remember (0 turns the cache off).
    public init(keys: any VerificationKeySource, settings: TokenSettings, cacheCapacity: Int = 65_536) {
        self.keys = keys
        self.settings = settings
        self.cache = cacheCapacity > 0 ? VerifiedTokenCache(capacity: cacheCapacity) : nil
    }

    /// Verifies a token; throws ``AuthError/invalidToken(reason:)`` with a reason for the debug log.
    public func verify(_ token: String, now: Date) throws(AuthError) -> VerifiedAccessToken {
        var token = token
        return try token.withUTF8 { bytes in Result { () throws(AuthError) in try self.verify(bytes: bytes, now: now) } }.get()
    }

    /// Verifies a token given as its bytes, e.g. where it lies in a request's header: a token seen before is
    /// checked without allocating; only a new one is copied, into the cache.
    public func verify(bytes token: UnsafeBufferPointer<UInt8>, now: Date) throws(AuthError) -> VerifiedAccessToken {
        guard token.count <= Self.maximumTokenLength else { throw .invalidToken(reason: "token too long") }
        if let cached = self.cache?.lookup(token) {
            try self.checkTimes(expiresAt: cached.expiresAt, notBefore: cached.notBefore, issuedAt: cached.issuedAt, now: now)
            return cached
        }
        let (claims, kid) = try self.verifiedClaims(token)
        var verified = try self.check(claims, now: now)
        verified.keyId = kid
        self.cache?.insert(token, verified)
        return verified
    }

    /// Signature first, then claims: the parser never reads a payload we did not sign.
    private func verifiedClaims(_ bytes: UnsafeBufferPointer<UInt8>) throws(AuthError) -> (ParsedClaims, String) {
        guard let firstDot = bytes.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = bytes[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")),
            bytes[(secondDot + 1)...].firstIndex(of: UInt8(ascii: ".")) == nil,
            firstDot > 0, secondDot > firstDot + 1, secondDot < bytes.count - 1
        else { throw .invalidToken(reason: "not a signed JWT") }

        let header = UnsafeBufferPointer(rebasing: bytes[..<firstDot])
        let ring = self.keys.verificationKeys
        let key: VerificationKey
        if let known = ring.keys.first(where: { $0.canonicalHeaders.contains(where: { header.elementsEqual($0) }) }) {
            key = known
        } else {
            let kid = try Self.checkHeader(header, algorithm: ring.algorithm)
            guard let named = ring.key(kid: kid) else {
                // Perhaps a key another instance began signing with a moment ago: read the keys again soon.
                self.keys.reloadSoon()
                throw .invalidToken(reason: "unknown key")
            }
            key = named
        }

        // Signature and payload are decoded onto the stack: no allocation for a well-formed token.
        let signatureSegment = UnsafeBufferPointer(rebasing: bytes[(secondDot + 1)...])
        let signingInput = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[..<secondDot]))
        let signed = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Base64URL.decodedCapacity(signatureSegment.count)) { room in
            guard let count = Base64URL.decode(bytes: signatureSegment, into: room) else { return false }
            return key.isValid(signature: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: room[..<count])), for: signingInput)
        }
        guard signed else { throw .invalidToken(reason: "bad signature") }

        let payloadSegment = UnsafeBufferPointer(rebasing: bytes[(firstDot + 1)..<secondDot])
        let parsed = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Base64URL.decodedCapacity(payloadSegment.count)) {
            room -> Result<ParsedClaims, AuthError> in
            guard let count = Base64URL.decode(bytes: payloadSegment, into: room) else { return .failure(.invalidToken(reason: "malformed payload")) }
            let payload = UnsafeBufferPointer(rebasing: room[..<count])
            if let claims = ClaimsParser.parse(payload) { return .success(claims) }
            guard !JSONDuplicateMembers.contains(payload) else { return .failure(.invalidToken(reason: "a payload member is named twice")) }
            guard let decoded = try? JSONDecoder().decode(AccessTokenClaims.self, from: Data(payload)) else {
                return .failure(.invalidToken(reason: "malformed or missing claims"))
            }
            guard let claims = ParsedClaims(decoded) else { return .failure(.invalidToken(reason: "malformed sub, sid or jti")) }
            return .success(claims)
        }
        return (try parsed.get(), key.kid)
    }

    /// A header other than the ones we write: decoded and held to the same pins. Returns the `kid` it names.
    private static func checkHeader(_ segment: UnsafeBufferPointer<UInt8>, algorithm: SigningAlgorithm) throws(AuthError) -> String {
        guard let data = Base64URL.decode(bytes: segment) else { throw .invalidToken(reason: "malformed header") }
        guard !JSONDuplicateMembers.contains(data) else { throw .invalidToken(reason: "a header member is named twice") }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(data)) else { throw .invalidToken(reason: "malformed header") }
        guard header.alg == algorithm.rawValue else { throw .invalidToken(reason: "algorithm not allowed") }
        guard let typ = header.typ?.lowercased(), typ == Self.tokenType || typ == "application/" + Self.tokenType else {
            throw .invalidToken(reason: "not an access token")
        }
        guard header.crit == nil else { throw .invalidToken(reason: "unsupported critical header") }
        guard let kid = header.kid else { throw .invalidToken(reason: "no key id") }
        return kid
    }

    func check(_ claims: ParsedClaims, now: Date) throws(AuthError) -> VerifiedAccessToken {
        guard claims.iss == self.settings.issuer else { throw .invalidToken(reason: "wrong issuer") }
        guard claims.aud == self.settings.audience else { throw .invalidToken(reason: "wrong audience") }
        guard let role = Role(rawValue: claims.role) else { throw .invalidToken(reason: "unknown role") }
        let verified = VerifiedAccessToken(
            userId: claims.sub,
            sessionId: claims.sid,
            jti: claims.jti,
            role: role,
            version: claims.ver,
            epoch: claims.epoch,
            issuedAt: Date(timeIntervalSince1970: TimeInterval(claims.iat)),
            expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.exp)),
            notBefore: claims.nbf.map { Date(timeIntervalSince1970: TimeInterval($0)) }
        )
        try self.checkTimes(expiresAt: verified.expiresAt, notBefore: verified.notBefore, issuedAt: verified.issuedAt, now: now)
        return verified
    }

    func checkTimes(expiresAt: Date, notBefore: Date?, issuedAt: Date, now: Date) throws(AuthError) {
        let leeway = self.settings.leeway.timeInterval
        guard expiresAt.timeIntervalSince(now) + leeway > 0 else { throw .invalidToken(reason: "expired") }
        guard issuedAt.timeIntervalSince(now) - leeway <= 0 else { throw .invalidToken(reason: "issued in the future") }
        if let notBefore {
            guard notBefore.timeIntervalSince(now) - leeway <= 0 else { throw .invalidToken(reason: "not yet valid") }
        }
    }
}
