import Crypto
import Foundation
import JWTKit
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// EdDSA and ES256 tokens, the key ring, and the pins that keep one algorithm or key from passing for another.
/// Each test names the attack it stops.
@Suite struct AsymmetricKeyTests {
    let settings = TokenSettings(issuer: "tessera", audience: "tessera", accessTokenTTL: .seconds(900), leeway: .seconds(30))
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func key(_ algorithm: SigningAlgorithm) async throws -> SigningKey {
        let pair = try #require(SigningKey.generatePair(algorithm))
        return try await SigningKey.asymmetric(algorithm, publicKey: pair.publicKey, privateKey: pair.privateKey)
    }

    func sign(with key: SigningKey) async throws -> String {
        let user = User(id: UUID(), email: "a@x.org", role: .user, isActive: true, createdAt: self.now)
        let session = Session(
            id: UUID(), userId: user.id, createdAt: self.now, lastSeenAt: self.now, expiresAt: self.now, ip: nil, userAgent: nil, deviceName: nil,
            terminalId: nil, tokenVersion: 1, epoch: 0
        )
        return try await AccessTokenSigner(key: key, settings: self.settings).sign(user: user, session: session, now: self.now).token
    }

    @Test(arguments: [SigningAlgorithm.edDSA, .es256])
    func aTokenWeSignIsAcceptedAndNamesItsKey(_ algorithm: SigningAlgorithm) async throws {
        let key = try await Self.key(algorithm)
        let token = try await self.sign(with: key)
        let header = try JSONSerialization.jsonObject(with: try #require(Base64URL.decode(token.split(separator: ".")[0]))) as? [String: String]
        #expect(header == ["alg": algorithm.rawValue, "typ": "at+jwt", "kid": key.kid])
        // The kid names the algorithm and the key (RFC 7638), and never starts with "-" (an option on a command line).
        let jwk = try #require(key.publicJWK).filter { ["kty", "crv", "x", "y"].contains($0.key) }
        #expect(key.kid == (algorithm == .edDSA ? "ed_" : "es_") + VerificationKey.thumbprint(jwk))
        let verified = try AccessTokenVerifier(key: key, settings: self.settings).verify(token, now: self.now)
        #expect(verified.keyId == key.kid)
        // The fast path recognises every header our signer writes, whatever order jwt-kit puts the members in.
        #expect(key.verification.canonicalHeaders.contains(Array(token.utf8.prefix { $0 != UInt8(ascii: ".") })))
    }

    /// jwt-kit, verifying from the public JWK alone, accepts what we sign: what another service holding only the
    /// JWKS does.
    @Test(arguments: [SigningAlgorithm.edDSA, .es256])
    func jwtKitVerifiesOurTokensFromThePublishedKey(_ algorithm: SigningAlgorithm) async throws {
        let key = try await Self.key(algorithm)
        let token = try await self.sign(with: key)
        let jwks = try JSONSerialization.data(withJSONObject: ["keys": [try #require(key.publicJWK)]])
        let keys = try await JWTKeyCollection().add(jwksJSON: String(decoding: jwks, as: UTF8.self))
        let claims = try await keys.verify(token, as: AccessTokenClaims.self)
        #expect(claims.iss == "tessera")
    }

    /// Attack: a token signed by a key of the same algorithm that is not ours, naming our key's `kid`.
    @Test(arguments: [SigningAlgorithm.edDSA, .es256])
    func anotherKeysSignatureUnderOurKidIsRefused(_ algorithm: SigningAlgorithm) async throws {
        let ours = try await Self.key(algorithm)
        let theirs = try await Self.key(algorithm)
        let forged = try await self.sign(with: theirs)
        let parts = forged.split(separator: ".")
        let header = Base64URL.encode(Array(#"{"alg":"\#(algorithm.rawValue)","typ":"at+jwt","kid":"\#(ours.kid)"}"#.utf8))
        let token = "\(header).\(parts[1]).\(parts[2])"
        #expect(throws: AuthError.invalidToken(reason: "bad signature")) { try AccessTokenVerifier(key: ours, settings: self.settings).verify(token, now: self.now) }
    }

    /// Attack: algorithm confusion. The public key is public: an HS256 token whose HMAC key is the published key's
    /// bytes, or a token of the other curve, must never pass for a token of the configured algorithm.
    @Test func anotherAlgorithmIsRefusedBeforeAnyKeyIsTried() async throws {
        let key = try await Self.key(.edDSA)
        let verifier = AccessTokenVerifier(key: key, settings: self.settings)
        let payload = String(try await self.sign(with: key).split(separator: ".")[1])
        let x = try #require(key.publicJWK?["x"])
        for secret in [x, String(decoding: try #require(Base64URL.decode(Substring(x))), as: UTF8.self)] {
            let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"at+jwt","kid":"\#(key.kid)"}"#.utf8))
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(payload)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
            let token = "\(header).\(payload).\(Base64URL.encode(Array(mac)))"
            #expect(throws: AuthError.invalidToken(reason: "algorithm not allowed")) { try verifier.verify(token, now: self.now) }
        }
        let es256 = try await self.sign(with: try await Self.key(.es256))
        #expect(throws: AuthError.self) { try verifier.verify(es256, now: self.now) }
        for alg in ["none", "ES256", "EdDSA ", "eddsa", "Ed25519", "RS256"] {
            let header = Base64URL.encode(Array(#"{"alg":"\#(alg)","typ":"at+jwt","kid":"\#(key.kid)"}"#.utf8))
            #expect(throws: AuthError.self) { try verifier.verify("\(header).\(payload).AAAA", now: self.now) }
        }
    }

    /// Attack: a `kid` that names no key of the ring (a guess, a path, a key that was dropped), or none at all.
    @Test func aKidTheRingDoesNotHoldIsRefused() async throws {
        let key = try await Self.key(.edDSA)
        let payload = String(try await self.sign(with: key).split(separator: ".")[1])
        let verifier = AccessTokenVerifier(key: key, settings: self.settings)
        for header in [
            #"{"alg":"EdDSA","typ":"at+jwt","kid":"../../etc/passwd"}"#, #"{"alg":"EdDSA","typ":"at+jwt"}"#, #"{"alg":"EdDSA","typ":"at+jwt","kid":""}"#,
            #"{"alg":"EdDSA","typ":"at+jwt","kid":"\#(key.kid)x"}"#,
        ] {
            #expect(throws: AuthError.self) { try verifier.verify("\(Base64URL.encode(Array(header.utf8))).\(payload).AAAA", now: self.now) }
        }
    }

    /// Rotation: a ring that holds the previous key verifies its tokens and signs with the new one; once the old key
    /// leaves the ring, its tokens are refused (those not verified before; the index refuses the rest when revoked).
    @Test func theRingVerifiesEveryKeyItHoldsAndSignsWithTheCurrentOne() async throws {
        let old = try await Self.key(.es256)
        let new = try await Self.key(.es256)
        let oldToken = try await self.sign(with: old)
        let ring = KeyRing(KeyRing.Contents(current: new, verifying: [old]))
        let verifier = AccessTokenVerifier(keys: ring, settings: self.settings, cacheCapacity: 0)
        #expect(try verifier.verify(oldToken, now: self.now).keyId == old.kid)
        let user = User(id: UUID(), email: "a@x.org", role: .user, isActive: true, createdAt: self.now)
        let session = Session(
            id: UUID(), userId: user.id, createdAt: self.now, lastSeenAt: self.now, expiresAt: self.now, ip: nil, userAgent: nil, deviceName: nil,
            terminalId: nil, tokenVersion: 1, epoch: 0
        )
        let newToken = try await AccessTokenSigner(keys: ring, settings: self.settings).sign(user: user, session: session, now: self.now).token
        #expect(try verifier.verify(newToken, now: self.now).keyId == new.kid)
        ring.replace(with: KeyRing.Contents(current: new))
        #expect(throws: AuthError.invalidToken(reason: "unknown key")) { try verifier.verify(oldToken, now: self.now) }
    }

    /// A key revoked in the index refuses every token it signed, including one verified and cached before.
    @Test func aRevokedKeysTokensAreRefusedByTheIndex() async throws {
        let key = try await Self.key(.edDSA)
        let token = try await self.sign(with: key)
        let verified = try AccessTokenVerifier(key: key, settings: self.settings).verify(token, now: self.now)
        let index = RevocationIndex()
        index.markSynced()
        #expect(index.verdict(for: verified) == .accepted)
        index.apply([RevocationEntry(seq: 1, kind: .key(kid: key.kid), revokedAt: self.now, actorId: nil, reason: "leaked")], now: self.now)
        #expect(index.verdict(for: verified) == .revoked)
        // A reload after a restore keeps it: a leaked key never becomes safe again.
        index.replace(with: [], now: self.now)
        #expect(index.verdict(for: verified) == .revoked)
    }

    /// Property: any change to a signed token (one byte of header, payload or signature, flipped at random) is
    /// refused.
    @Test(arguments: [SigningAlgorithm.edDSA, .es256])
    func everyTamperedTokenIsRefused(_ algorithm: SigningAlgorithm) async throws {
        let key = try await Self.key(algorithm)
        let verifier = AccessTokenVerifier(key: key, settings: self.settings, cacheCapacity: 0)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let token = Array(try await self.sign(with: key).utf8)
            var tampered = token
            // Not the last character, whose low bits may be unused by the signature's bytes.
            let position = Int.random(in: 0..<(token.count - 1), using: &generator)
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
            tampered[position] = alphabet.filter { $0 != token[position] }.randomElement(using: &generator)!
            let text = String(decoding: tampered, as: UTF8.self)
            #expect(throws: AuthError.self, "\(text)") { try verifier.verify(text, now: self.now) }
        }
    }

    @Test func hs256KidsNameTheSecretWithoutRevealingIt() async throws {
        let secret = String(repeating: "s", count: 40)
        let key = try await SigningKey(secret: secret)
        #expect(key.kid == SigningKey.secretKid(secret))
        #expect(key.kid.hasPrefix("hs_") && !key.kid.contains("ssss"))
        #expect(key.publicJWK == nil)
        #expect(SigningKey.secretKid(secret) != SigningKey.secretKid(secret + "x"))
    }

    /// RFC 7638 §3.1's example key has the thumbprint the RFC gives.
    @Test func thumbprintsFollowRFC7638() {
        let jwk = ["kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"]
        // Computed independently: sha256 of {"crv":"P-256","kty":"EC","x":"…","y":"…"}.
        let canonical = #"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#
        #expect(VerificationKey.thumbprint(jwk) == Base64URL.encode(Array(SHA256.hash(data: Array(canonical.utf8)))))
        // RFC 8037 appendix A.3: the Ed25519 example key's thumbprint.
        #expect(VerificationKey.thumbprint(["kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    }
}
