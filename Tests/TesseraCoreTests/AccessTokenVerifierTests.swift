import Crypto
import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// Each test names the attack on access tokens it stops.
@Suite struct AccessTokenVerifierTests {
    static let secret = "test-secret-0123456789-abcdefghijklmnop"
    /// The `kid` the secret is known by.
    static let kid = SigningKey.secretKid(secret)
    let settings = TokenSettings(issuer: "tessera", audience: "tessera", accessTokenTTL: .seconds(900), leeway: .seconds(30))
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func verifier(secret: String = Self.secret) async throws -> AccessTokenVerifier {
        AccessTokenVerifier(key: try await SigningKey(secret: secret), settings: self.settings)
    }

    func claims(_ edit: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        let iat = Int(self.now.timeIntervalSince1970)
        var claims: [String: Any] = [
            "iss": "tessera", "aud": "tessera", "sub": UUID().uuidString, "sid": UUID().uuidString, "jti": UUID().uuidString,
            "iat": iat, "nbf": iat, "exp": iat + 900, "ver": 0, "epoch": 0, "role": "user",
        ]
        edit(&claims)
        return claims
    }

    /// Builds a token by hand, so that headers and signatures can be anything an attacker sends.
    func forge(header: [String: Any] = ["alg": "HS256", "typ": "at+jwt", "kid": Self.kid], claims: [String: Any], key: String = Self.secret, hash: String = "sha256")
        throws -> String
    {
        let head = Base64URL.encode(try JSONSerialization.data(withJSONObject: header))
        let body = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
        let input = Data("\(head).\(body)".utf8)
        let keyData = SymmetricKey(data: Data(key.utf8))
        let signature: [UInt8] =
            switch hash {
            case "sha384": Array(HMAC<SHA384>.authenticationCode(for: input, using: keyData))
            case "none": []
            default: Array(HMAC<SHA256>.authenticationCode(for: input, using: keyData))
            }
        return "\(head).\(body).\(Base64URL.encode(signature))"
    }

    /// Builds a token from raw JSON texts, so that a member can be named twice. A header without a `kid` gets the
    /// secret's, first, so that each case is refused for what it tests.
    func forgeRaw(header: String, payload: String, key: String = Self.secret) -> String {
        let header = header.contains(#""kid""#) ? header : #"{"kid":"\#(Self.kid)","# + header.dropFirst()
        let head = Base64URL.encode(Array(header.utf8))
        let body = Base64URL.encode(Array(payload.utf8))
        let signature = HMAC<SHA256>.authenticationCode(for: Data("\(head).\(body)".utf8), using: SymmetricKey(data: Data(Self.secret.utf8)))
        return "\(head).\(body).\(Base64URL.encode(Array(signature)))"
    }

    func rawClaims(_ extra: String = "", sub: String = UUID().uuidString.lowercased()) -> String {
        let iat = Int(self.now.timeIntervalSince1970)
        return #"{"iss":"tessera","aud":"tessera","sub":""# + sub + #"","sid":""# + UUID().uuidString.lowercased() + #"","jti":""#
            + UUID().uuidString.lowercased() + #"","iat":\#(iat),"exp":\#(iat + 900),"ver":0,"epoch":0,"role":"user""# + extra + "}"
    }

    /// Attack: a member named twice, so that a parser taking the first and one taking the last read different tokens
    /// (`"alg":"HS256","alg":"none"`, a second `sub` naming someone else, a second `role`). Every duplicate is refused,
    /// in the header and the payload, known or unknown, spelled plainly or with escapes.
    @Test(arguments: [
        (#"{"alg":"HS256","typ":"at+jwt","alg":"none"}"#, ""),
        (#"{"alg":"HS256","typ":"at+jwt","typ":"JWT"}"#, ""),
        (#"{"alg":"HS256","typ":"at+jwt","al\u0067":"HS256"}"#, ""),
        (#"{"alg":"HS256","typ":"at+jwt","kid":"a","kid":"b"}"#, ""),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","sub":"00000000-0000-0000-0000-000000000001""#),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","role":"admin""#),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","x":1,"x":2"#),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","r\u006fle":"admin""#),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","ver":0"#),
        (#"{"alg":"HS256","typ":"at+jwt"}"#, #","n":{"a":1,"a":2}"#),
    ])
    func aMemberNamedTwiceIsRefused(header: String, extra: String) async throws {
        try await self.expectRefused(self.forgeRaw(header: header, payload: self.rawClaims(extra)))
    }

    @Test func theSameTokensWithoutTheDuplicateAreAccepted() async throws {
        let verifier = try await self.verifier()
        _ = try verifier.verify(self.forgeRaw(header: #"{"alg":"HS256","typ":"at+jwt","kid":"\#(Self.kid)"}"#, payload: self.rawClaims(#","x":1"#)), now: self.now)
        _ = try verifier.verify(self.forgeRaw(header: #"{"alg":"HS256","typ":"at+jwt"}"#, payload: self.rawClaims(#","n":{"a":1,"b":2}"#)), now: self.now)
    }

    func expectRefused(_ token: String, at date: Date? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let verifier = try await self.verifier()
        #expect(throws: AuthError.self, sourceLocation: sourceLocation) {
            _ = try verifier.verify(token, now: date ?? self.now)
        }
    }

    @Test func aTokenWeSignedIsAccepted() async throws {
        let key = try await SigningKey(secret: Self.secret)
        let user = User(id: UUID(), email: "a@x.org", role: .admin, isActive: true, createdAt: self.now)
        let session = Session(
            id: UUID(), userId: user.id, createdAt: self.now, lastSeenAt: self.now, expiresAt: self.now, ip: nil, userAgent: nil,
            deviceName: nil, terminalId: nil, tokenVersion: 4, epoch: 2
        )
        let (token, _) = try await AccessTokenSigner(key: key, settings: self.settings).sign(user: user, session: session, now: self.now)
        let verified = try await self.verifier().verify(token, now: self.now)
        #expect(verified.userId == user.id)
        #expect(verified.sessionId == session.id)
        #expect(verified.role == .admin)
        #expect(verified.version == 4)
        #expect(verified.epoch == 2)
    }

    @Test func aForgedTokenWithTheRightKeyAndShapeIsAccepted() async throws {
        // Guards the forging helper itself: the refusals below are refusals of the attack, not of a broken token.
        _ = try await self.verifier().verify(try self.forge(claims: self.claims()), now: self.now)
    }

    @Test func algNoneIsRefused() async throws {
        // Attack: strip the signature and claim `alg: none` (RFC 8725 §2.1).
        try await self.expectRefused(try self.forge(header: ["alg": "none", "typ": "at+jwt"], claims: self.claims(), hash: "none"))
        // The same with a valid HS256 signature left on: the header alone must decide.
        try await self.expectRefused(try self.forge(header: ["alg": "none", "typ": "at+jwt"], claims: self.claims()))
    }

    @Test func anotherHMACAlgorithmWithTheSameKeyIsRefused() async throws {
        // Attack: algorithm substitution; only HS256 is pinned.
        try await self.expectRefused(try self.forge(header: ["alg": "HS384", "typ": "at+jwt"], claims: self.claims(), hash: "sha384"))
    }

    @Test func anAsymmetricAlgorithmIsRefused() async throws {
        // Attack: RS256/HS256 key confusion — the header names RS256 but the HMAC key signs it.
        try await self.expectRefused(try self.forge(header: ["alg": "RS256", "typ": "at+jwt"], claims: self.claims()))
    }

    @Test func aTokenSignedWithAnotherKeyIsRefused() async throws {
        try await self.expectRefused(try self.forge(claims: self.claims(), key: "another-secret-0123456789-abcdefghijkl"))
    }

    @Test func aTamperedPayloadIsRefused() async throws {
        // Attack: keep a valid signature, swap the payload for one with `role: admin`.
        let genuine = try self.forge(claims: self.claims()).split(separator: ".")
        let evil = Base64URL.encode(try JSONSerialization.data(withJSONObject: self.claims { $0["role"] = "admin" }))
        try await self.expectRefused("\(genuine[0]).\(evil).\(genuine[2])")
    }

    @Test func anotherKindOfJWTSignedWithTheSameKeyIsRefused() async throws {
        // RFC 8725 §3.11: an ID token or any JWT without `typ: at+jwt` is not an access token.
        try await self.expectRefused(try self.forge(header: ["alg": "HS256", "typ": "JWT"], claims: self.claims()))
        try await self.expectRefused(try self.forge(header: ["alg": "HS256"], claims: self.claims()))
    }

    @Test func aCriticalHeaderWeDoNotUnderstandIsRefused() async throws {
        try await self.expectRefused(try self.forge(header: ["alg": "HS256", "typ": "at+jwt", "crit": ["exp"]], claims: self.claims()))
    }

    @Test func aWrongIssuerOrAudienceIsRefused() async throws {
        // Attack: replay a token another service issued with a shared secret.
        try await self.expectRefused(try self.forge(claims: self.claims { $0["iss"] = "someone-else" }))
        try await self.expectRefused(try self.forge(claims: self.claims { $0["aud"] = "another-api" }))
    }

    @Test func anExpiredTokenIsRefusedPastTheLeewayOnly() async throws {
        let token = try self.forge(claims: self.claims())
        _ = try await self.verifier().verify(token, now: self.now.addingTimeInterval(900 + 20))
        try await self.expectRefused(token, at: self.now.addingTimeInterval(900 + 31))
    }

    @Test func aTokenFromTheFutureIsRefused() async throws {
        try await self.expectRefused(try self.forge(claims: self.claims { $0["nbf"] = Int(self.now.timeIntervalSince1970) + 120 }))
        try await self.expectRefused(try self.forge(claims: self.claims { $0["iat"] = Int(self.now.timeIntervalSince1970) + 120 }))
    }

    @Test func missingSessionOrTokenIdsAreRefused() async throws {
        try await self.expectRefused(try self.forge(claims: self.claims { $0.removeValue(forKey: "sid") }))
        try await self.expectRefused(try self.forge(claims: self.claims { $0.removeValue(forKey: "jti") }))
        try await self.expectRefused(try self.forge(claims: self.claims { $0["sid"] = "not-a-uuid" }))
        try await self.expectRefused(try self.forge(claims: self.claims { $0["role"] = "root" }))
    }

    @Test(arguments: ["", "a", "a.b", "a.b.c.d", "..", "e30.e30.", "!!!.???.***", String(repeating: "a", count: 5000)])
    func garbageIsRefusedWithoutCrashing(token: String) async throws {
        try await self.expectRefused(token)
    }

    @Test func aSecretShorterThan32BytesIsRefused() async {
        await #expect(throws: AuthError.weakSecret(minimumBytes: 32)) {
            _ = try await SigningKey(secret: "short-secret")
        }
    }

    @Test func aCachedTokenIsStillRefusedOnceItExpires() async throws {
        // The verified-token cache must not extend a token's life.
        let verifier = try await self.verifier()
        let token = try self.forge(claims: self.claims())
        _ = try verifier.verify(token, now: self.now)
        _ = try verifier.verify(token, now: self.now.addingTimeInterval(60))
        #expect(throws: AuthError.self) { _ = try verifier.verify(token, now: self.now.addingTimeInterval(900 + 31)) }
    }

    @Test func aTokenDifferingFromACachedOneInOneByteIsVerifiedAfresh() async throws {
        let verifier = try await self.verifier()
        let token = try self.forge(claims: self.claims())
        _ = try verifier.verify(token, now: self.now)
        var bytes = Array(token.utf8)
        bytes[bytes.count - 2] = bytes[bytes.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: AuthError.self) { _ = try verifier.verify(String(decoding: bytes, as: UTF8.self), now: self.now) }
    }

    /// The cache finds a token by its signature; a token that carries a cached token's signature over other claims
    /// (say, another `sub` or a later `exp`) lands on that entry and must still be refused, not answered from it.
    @Test func anotherPayloadUnderACachedTokensSignatureIsRefused() async throws {
        let verifier = try await self.verifier()
        let claims = self.claims()
        let token = try self.forge(claims: claims)
        _ = try verifier.verify(token, now: self.now)
        let parts = token.split(separator: ".")
        let other = try self.forge(claims: self.claims { $0["sub"] = UUID().uuidString.lowercased() }).split(separator: ".")
        #expect(throws: AuthError.invalidToken(reason: "bad signature")) {
            _ = try verifier.verify([parts[0], other[1], parts[2]].joined(separator: "."), now: self.now)
        }
        #expect(throws: AuthError.self) { _ = try verifier.verify(token + "x", now: self.now) }
        #expect(try verifier.verify(token, now: self.now).userId.uuidString == claims["sub"] as? String)
    }

    /// The cache's comparison goes eight bytes at a time and then byte by byte: a difference anywhere, in a word or
    /// in the tail, must be seen, and equal bytes must compare equal, whatever the length.
    @Test func theCachesComparisonSeesADifferenceAtEveryPosition() {
        for length in 0..<41 {
            let stored = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            stored.withUnsafeBufferPointer { #expect(VerifiedTokenCache.constantTimeEqual(stored, $0)) }
            for position in 0..<length {
                var given = stored
                given[position] ^= 0x40
                given.withUnsafeBufferPointer { #expect(!VerifiedTokenCache.constantTimeEqual(stored, $0), "length \(length), position \(position)") }
            }
            let longer = stored + [0]
            longer.withUnsafeBufferPointer { #expect(!VerifiedTokenCache.constantTimeEqual(stored, $0)) }
        }
    }

    @Test func aSignatureWithNonCanonicalBase64IsRefused() async throws {
        // One token, one encoding: a signature whose unused trailing bits are set is a different string for the
        // same bytes, and would dodge a cache keyed by the token.
        let token = try self.forge(claims: self.claims())
        let last = token.last!
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let value = alphabet.firstIndex(of: last)!
        let tweaked = String(token.dropLast()) + String(alphabet[value | 0x01])
        if tweaked != token { try await self.expectRefused(tweaked) }
        try await self.expectRefused(token + "=")
    }

    /// The fast paths (header recognised byte for byte, flat claims parser) must take every token our own signer
    /// writes; the general decoder is for the unusual.
    @Test func theFastClaimsParserReadsEveryTokenOurSignerWrites() async throws {
        let key = try await SigningKey(secret: String(repeating: "k", count: 32))
        let signer = AccessTokenSigner(key: key, settings: TokenSettings())
        for _ in 0..<500 {
            let user = User(id: UUID(), email: "a@b.org", role: .user, isActive: true, createdAt: Date())
            let session = Session(
                id: UUID(), userId: user.id, createdAt: Date(), lastSeenAt: Date(), expiresAt: Date(), ip: nil, userAgent: nil, deviceName: nil,
                terminalId: nil, tokenVersion: 3, epoch: 1
            )
            let token = try await signer.sign(user: user, session: session, now: Date()).token
            let segment = token.split(separator: ".")[1]
            let payload = try #require(Base64URL.decode(segment))
            #expect(ClaimsParser.parse(Array(payload)) != nil, "\(String(decoding: payload, as: UTF8.self))")
            // jwt-kit writes the header's two members in either order, varying from token to token.
            let header = Array(token.utf8.prefix { $0 != UInt8(ascii: ".") })
            #expect(key.verification.canonicalHeaders.contains(header), "\(String(decoding: Base64URL.decode(token.split(separator: ".")[0])!, as: UTF8.self))")
        }
    }

    @Test func theFastClaimsParserReadsWhatJSONDecoderReads() throws {
        let payload = try JSONSerialization.data(withJSONObject: self.claims { $0["extra"] = "x"; $0["flag"] = true; $0["none"] = NSNull() })
        let fast = try #require(ClaimsParser.parse(Array(payload)))
        let slow = try JSONDecoder().decode(AccessTokenClaims.self, from: payload)
        #expect(fast == ParsedClaims(slow))
    }

    @Test(arguments: [
        #"{"iss":"a","iss":"b"}"#, #"{"iss":"a\u0062"}"#, #"{"nested":{"a":1}}"#, #"{"exp":1.5}"#, #"{"exp":01}"#, #"[]"#, #"{}"#,
        #"{"iss":"a"} trailing"#, #"{"iss":"a",}"#, #"{"sub":"not-a-uuid"}"#, #"{"sub":"6ba7b810-9dad-11d1-80b4-00c04fd430c8x"}"#,
        #"{"sub":6}"#,
    ])
    func theFastClaimsParserHandsAnythingUnusualToTheGeneralDecoder(payload: String) {
        #expect(ClaimsParser.parse(Array(payload.utf8)) == nil)
    }
}
