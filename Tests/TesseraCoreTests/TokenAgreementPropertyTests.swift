import Crypto
import Foundation
import JWTKit
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// Property: for any payload a signer could produce, Tessera's verifier (the hand-written fast path, or
/// `JSONDecoder` when it declines) and jwt-kit — a library no one here wrote — with the same pins agree on accept or
/// refuse and on every claim; and a payload that names a member twice is always refused. Payloads are generated as
/// JSON text so that escapes, number forms, whitespace, extra members and duplicates occur as an attacker's would.
/// (scripts/fuzz drives the same parsers with libFuzzer on raw bytes.)
@Suite struct TokenAgreementPropertyTests {
    static let secret = "agreement-secret-0123456789-abcdefghijkl"
    let settings = TokenSettings(issuer: "tessera", audience: "tessera", accessTokenTTL: .seconds(900), leeway: .seconds(30))
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test(arguments: 0..<8)
    func tesseraAndJWTKitAgreeOnEveryGeneratedToken(batch: UInt64) async throws {
        let verifier = AccessTokenVerifier(key: try await SigningKey(secret: Self.secret), settings: self.settings, cacheCapacity: 0)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: SigningKey.secretKid(Self.secret)))
        var random = SplitMix(seed: 0xC0FFEE &+ batch &* 7919)
        var accepted = 0
        for _ in 0..<250 {
            let (payload, duplicated) = Self.payload(&random, now: Int64(self.now.timeIntervalSince1970))
            let token = Self.sign(header: #"{"alg":"HS256","typ":"at+jwt","kid":"\#(SigningKey.secretKid(Self.secret))"}"#, payload: payload)
            let ours = try? verifier.verify(token, now: self.now)
            if duplicated {
                #expect(ours == nil, "a duplicate member was accepted: \(payload)")
                continue
            }
            let theirs = await self.referenceVerify(token, keys: keys)
            #expect(ours == theirs, "disagreement on \(payload)")
            if ours != nil { accepted += 1 }
        }
        #expect(accepted > 20, "the generator must make valid tokens too")
    }

    /// jwt-kit checks the signature and decodes; the pins Tessera adds on top (issuer, audience, role, ids, times)
    /// are applied to what it decoded.
    func referenceVerify(_ token: String, keys: JWTKeyCollection) async -> VerifiedAccessToken? {
        guard let claims = try? await keys.verify(token, as: AccessTokenClaims.self) else { return nil }
        guard claims.iss == "tessera", claims.aud == "tessera", let role = Role(rawValue: claims.role), let sub = UUID(uuidString: claims.sub),
            let sid = UUID(uuidString: claims.sid), let jti = UUID(uuidString: claims.jti)
        else { return nil }
        let now = self.now.timeIntervalSince1970
        guard Double(claims.exp) + 30 > now, Double(claims.iat) - 30 <= now, claims.nbf.map({ Double($0) - 30 <= now }) ?? true else { return nil }
        return VerifiedAccessToken(
            userId: sub, sessionId: sid, jti: jti, role: role, version: claims.ver, epoch: claims.epoch,
            issuedAt: Date(timeIntervalSince1970: TimeInterval(claims.iat)), expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.exp)),
            notBefore: claims.nbf.map { Date(timeIntervalSince1970: TimeInterval($0)) }, keyId: SigningKey.secretKid(Self.secret)
        )
    }

    static func sign(header: String, payload: String) -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(Self.secret.utf8)))
        return input + "." + Base64URL.encode(Array(mac))
    }

    /// A payload as JSON text, and whether it names a member twice.
    static func payload(_ random: inout SplitMix, now: Int64) -> (String, Bool) {
        func pick<T>(_ options: [T]) -> T { options[Int(random.next() % UInt64(options.count))] }
        func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        func uuid() -> String {
            let value = UUID().uuidString
            return chance(94) ? value.lowercased() : pick([value, "not-a-uuid", String(value.dropLast()), value.lowercased() + " "])
        }
        func string(_ value: String) -> String {
            chance(94) ? "\"\(value)\"" : pick([
                "\"" + value.unicodeScalars.map { $0 == "e" ? "\\u0065" : String($0) }.joined() + "\"",
                "\"\(value)\\n\"", "\"\(value.uppercased())\"",
            ])
        }
        func integer(_ value: Int64) -> String {
            chance(94) ? "\(value)" : pick(["\(value).0", "\(value)e0", "-\(value)", "\"\(value)\"", "99999999999999999999", "\(value + 1)"])
        }
        var members: [(String, String)] = [
            ("iss", string("tessera")), ("aud", string("tessera")), ("sub", "\"\(uuid())\""), ("sid", "\"\(uuid())\""), ("jti", "\"\(uuid())\""),
            ("iat", integer(now - 5)), ("exp", integer(now + 900)), ("ver", integer(Int64(random.next() % 5))),
            ("epoch", integer(Int64(random.next() % 3))), ("role", string(pick(["user", "admin", "root"]))),
        ]
        if chance(30) { members.append(("nbf", integer(now - 1))) }
        if chance(15) { members.remove(at: Int(random.next() % UInt64(members.count))) }
        if chance(25) {
            members.append((pick(["x", "extra", "cnf", "scope"]), pick(["1", "true", "null", "\"v\"", "[1,2]", "{\"a\":{\"b\":[]}}", "-0", "1.5"])))
        }
        var duplicated = false
        if chance(12), let member = members.randomElement(using: &random) {
            members.append((member.0, pick([member.1, "\"00000000-0000-0000-0000-000000000000\"", "\"admin\"", "0"])))
            duplicated = true
        }
        members.shuffle(using: &random)
        let space = pick(["", " ", "\n  "])
        let body = members.map { "\"\($0.0)\":\(space)\($0.1)" }.joined(separator: "," + space)
        return ("{" + space + body + space + "}", duplicated)
    }
}

/// A seeded generator, so that a failing batch can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
