import Foundation

/// Reads the flat JSON object of an access token's payload without a general JSON decoder.
///
/// It only ever sees payloads whose HMAC was already checked, so it parses what our signer writes: one object of
/// string, integer, boolean and null members. Anything else it does not handle — nesting, escapes, fractions,
/// duplicate keys — returns nil and the caller falls back to Foundation's `JSONDecoder`, so it never accepts more
/// than the standard decoder would. A member named twice (known or not) always returns nil: the caller refuses
/// such a payload outright (``JSONDuplicateMembers``), never letting the first or the last win.
enum ClaimsParser {
    /// The claims Tessera writes, or nil when the payload needs the general decoder. `sub`, `sid` and `jti` are read
    /// as UUIDs straight from the bytes (no `String` made for them); a value that is not one goes to the general
    /// decoder too, which then refuses it.
    static func parse(_ bytes: [UInt8]) -> ParsedClaims? {
        bytes.withUnsafeBufferPointer { Self.parse($0) }
    }

    static func parse(_ buffer: UnsafeBufferPointer<UInt8>) -> ParsedClaims? {
        var iss: String?, aud: String?, role: String?
        var sub: UUID?, sid: UUID?, jti: UUID?
        var iat: Int64?, nbf: Int64?, exp: Int64?, ver: Int64?, epoch: Int64?
        var seen: UInt16 = 0
        var unknownKeys: [String] = []
        var index = 0
        func skipSpace() {
            while index < buffer.count, buffer[index] == 0x20 || buffer[index] == 0x0A || buffer[index] == 0x0D || buffer[index] == 0x09 {
                index += 1
            }
        }
        func string() -> String? {
            guard index < buffer.count, buffer[index] == 0x22 else { return nil }
            index += 1
            let start = index
            while index < buffer.count, buffer[index] != 0x22 {
                // Escapes, control characters and anything beyond ASCII (which must be valid UTF-8 to be JSON) go to
                // the general decoder.
                if buffer[index] == 0x5C || buffer[index] < 0x20 || buffer[index] >= 0x80 { return nil }
                index += 1
            }
            guard index < buffer.count else { return nil }
            let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<index]), as: UTF8.self)
            index += 1
            return text
        }
        func uuid() -> UUID? {
            guard index + 38 <= buffer.count, buffer[index] == 0x22, buffer[index + 37] == 0x22 else { return nil }
            let value = UUID(parsing: UnsafeBufferPointer(rebasing: buffer[(index + 1)..<(index + 37)]))
            index += 38
            return value
        }
        func integer() -> Int64? {
            var negative = false
            if index < buffer.count, buffer[index] == 0x2D {
                negative = true
                index += 1
            }
            let start = index
            var value: Int64 = 0
            while index < buffer.count, buffer[index] >= 0x30, buffer[index] <= 0x39 {
                let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (added, overflow2) = multiplied.addingReportingOverflow(Int64(buffer[index] - 0x30))
                guard !overflow1, !overflow2 else { return nil }
                value = added
                index += 1
            }
            guard index > start, index - start == 1 || buffer[start] != 0x30 else { return nil }
            // Fractions and exponents go to the general decoder.
            if index < buffer.count, buffer[index] == 0x2E || buffer[index] == 0x65 || buffer[index] == 0x45 { return nil }
            return negative ? -value : value
        }
        func literal(_ word: String) -> Bool {
            let utf8 = word.utf8
            guard index + utf8.count <= buffer.count,
                UnsafeBufferPointer(rebasing: buffer[index..<(index + utf8.count)]).elementsEqual(utf8)
            else { return false }
            index += utf8.count
            return true
        }

        skipSpace()
        guard index < buffer.count, buffer[index] == 0x7B else { return nil }
        index += 1
        skipSpace()
        if index < buffer.count, buffer[index] == 0x7D { return nil }
        while true {
            skipSpace()
            guard let key = string() else { return nil }
            skipSpace()
            guard index < buffer.count, buffer[index] == 0x3A else { return nil }
            index += 1
            skipSpace()
            guard index < buffer.count else { return nil }
            let bit: UInt16
            switch key {
            case "iss": bit = 1 << 0
            case "aud": bit = 1 << 1
            case "sub": bit = 1 << 2
            case "sid": bit = 1 << 3
            case "jti": bit = 1 << 4
            case "role": bit = 1 << 5
            case "iat": bit = 1 << 6
            case "nbf": bit = 1 << 7
            case "exp": bit = 1 << 8
            case "ver": bit = 1 << 9
            case "epoch": bit = 1 << 10
            default: bit = 0
            }
            if bit != 0 {
                guard seen & bit == 0 else { return nil }
                seen |= bit
            }
            switch key {
            case "iss": guard let value = string() else { return nil }; iss = value
            case "aud": guard let value = string() else { return nil }; aud = value
            case "sub": guard let value = uuid() else { return nil }; sub = value
            case "sid": guard let value = uuid() else { return nil }; sid = value
            case "jti": guard let value = uuid() else { return nil }; jti = value
            case "role": guard let value = string() else { return nil }; role = value
            case "iat": guard let value = integer() else { return nil }; iat = value
            case "nbf": guard let value = integer() else { return nil }; nbf = value
            case "exp": guard let value = integer() else { return nil }; exp = value
            case "ver": guard let value = integer() else { return nil }; ver = value
            case "epoch": guard let value = integer() else { return nil }; epoch = value
            default:
                // Unknown members are allowed if they are simple and named once; anything nested goes to the general
                // decoder.
                guard !unknownKeys.contains(key) else { return nil }
                unknownKeys.append(key)
                if buffer[index] == 0x22 {
                    guard string() != nil else { return nil }
                } else if buffer[index] == 0x2D || (buffer[index] >= 0x30 && buffer[index] <= 0x39) {
                    guard integer() != nil else { return nil }
                } else if !(literal("true") || literal("false") || literal("null")) {
                    return nil
                }
            }
            skipSpace()
            guard index < buffer.count else { return nil }
            if buffer[index] == 0x2C {
                index += 1
                continue
            }
            guard buffer[index] == 0x7D else { return nil }
            index += 1
            skipSpace()
            guard index == buffer.count else { return nil }
            break
        }
        guard let iss, let aud, let sub, let sid, let jti, let role, let iat, let exp, let ver, let epoch else { return nil }
        return ParsedClaims(iss: iss, aud: aud, sub: sub, sid: sid, jti: jti, iat: iat, nbf: nbf, exp: exp, ver: ver, epoch: epoch, role: role)
    }
}

/// An access token's claims as the verifier checks them: the ids already UUIDs.
struct ParsedClaims: Equatable, Sendable {
    var iss: String
    var aud: String
    var sub: UUID
    var sid: UUID
    var jti: UUID
    var iat: Int64
    var nbf: Int64?
    var exp: Int64
    var ver: Int64
    var epoch: Int64
    var role: String
}
