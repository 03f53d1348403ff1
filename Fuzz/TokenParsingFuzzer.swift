// libFuzzer target for the hand-written parsers on the token path: the claims parser (with its duplicate-member
// rule), the base64url decoder and the bearer-header scanner. Built by scripts/fuzz from these sources and the Core
// files it names, with `swiftc -sanitize=fuzzer,address`; every input is checked against a reference built from
// Foundation (JSONDecoder, Data(base64Encoded:), String splitting), and any disagreement is a crash libFuzzer keeps.
import Foundation

/// The claims as the general decoder reads them: the reference for ``ClaimsParser``.
struct ReferenceClaims: Decodable {
    var iss: String
    var aud: String
    var sub: String
    var sid: String
    var jti: String
    var iat: Int64
    var nbf: Int64?
    var exp: Int64
    var ver: Int64
    var epoch: Int64
    var role: String
}

func reference(_ payload: [UInt8]) -> ParsedClaims? {
    guard !JSONDuplicateMembers.contains(payload), let claims = try? JSONDecoder().decode(ReferenceClaims.self, from: Data(payload)),
        let sub = UUID(uuidString: claims.sub), let sid = UUID(uuidString: claims.sid), let jti = UUID(uuidString: claims.jti)
    else { return nil }
    return ParsedClaims(
        iss: claims.iss, aud: claims.aud, sub: sub, sid: sid, jti: jti, iat: claims.iat, nbf: claims.nbf, exp: claims.exp, ver: claims.ver,
        epoch: claims.epoch, role: claims.role
    )
}

/// What the verifier does with a payload: the fast parser, or the general decoder when it declines.
func verifierPath(_ payload: [UInt8]) -> ParsedClaims? {
    if let fast = ClaimsParser.parse(payload) {
        // The fast path never reads a payload with a duplicate member, and never reads one differently.
        agree(!JSONDuplicateMembers.contains(payload), "fast path accepted a duplicate member")
        agree(fast == reference(payload), "fast path and JSONDecoder disagree")
        return fast
    }
    return reference(payload)
}

func checkBase64(_ input: [UInt8]) {
    let fast = input.withUnsafeBufferPointer { Base64URL.decode(bytes: $0) }
    // Reference: Foundation's decoder on the translated text, and only the canonical encoding of the bytes it gives.
    var slow: [UInt8]?
    if let text = String(bytes: input, encoding: .utf8), let data = Base64URL.decode(Substring(text)), Base64URL.encode(data) == text {
        slow = Array(data)
    }
    agree(fast == slow, "base64url decoders disagree")
}

func checkBearer(_ input: [UInt8]) {
    let fast = input.withUnsafeBufferPointer { BearerToken.parse($0) }
    // Reference: "bearer" (any case), one or more spaces, one run of visible ASCII, optional trailing spaces.
    let expected: BearerToken.Credentials
    let scheme = Array("bearer".utf8)
    if input.count < 6 || !zip(input.prefix(6), scheme).allSatisfy({ $0 | 0x20 == $1 }) {
        expected = .otherScheme
    } else if input.count == 6 {
        expected = .malformed
    } else if input[6] != 0x20 {
        expected = .otherScheme
    } else if input.count > BearerToken.maximumLength {
        expected = .malformed
    } else {
        let rest = input.dropFirst(6)
        let start = rest.firstIndex(where: { $0 != 0x20 })
        let end = rest.lastIndex(where: { $0 != 0x20 })
        if let start, let end, rest[start...end].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            expected = .token(start..<(end + 1))
        } else {
            expected = .malformed
        }
    }
    agree(fast == expected, "bearer scanners disagree")
}

/// Stops the run with the reason (a `precondition` message is not printed in an optimized build).
func agree(_ condition: Bool, _ message: String) {
    if !condition { fatalError(message) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    _ = verifierPath(input)
    checkBase64(input)
    checkBearer(input)
    return 0
}
