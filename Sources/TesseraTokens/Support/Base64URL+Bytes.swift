/// Allocation-light base64url decoding straight from UTF-8 bytes, for the token verification hot path.
extension Base64URL {
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            table[Int(character)] = UInt8(index)
        }
        return table
    }()

    /// Decodes unpadded base64url; nil on any character outside the alphabet, on padding, or on an impossible length.
    /// Non-canonical trailing bits are refused too, so that one token has exactly one encoding.
    public static func decode(bytes input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var failed = false
        let output = [UInt8](unsafeUninitializedCapacity: Self.decodedCapacity(input.count)) { buffer, count in
            guard let written = Self.decode(bytes: input, into: buffer) else {
                failed = true
                count = 0
                return
            }
            count = written
        }
        return failed ? nil : output
    }

    /// The room ``decode(bytes:into:)`` needs for `count` encoded bytes.
    public static func decodedCapacity(_ count: Int) -> Int { count / 4 * 3 + 2 }

    /// Decodes into caller-provided room (at least ``decodedCapacity(_:)`` bytes), so that the verify path can decode
    /// onto the stack; returns how many bytes were written, or nil as ``decode(bytes:)`` does.
    public static func decode(bytes input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        let remainder = input.count % 4
        guard remainder != 1, output.count >= Self.decodedCapacity(input.count) else { return nil }
        let table = Self.table
        var index = 0
        var written = 0
        while index + 4 <= input.count {
            let a = table[Int(input[index])], b = table[Int(input[index + 1])]
            let c = table[Int(input[index + 2])], d = table[Int(input[index + 3])]
            guard a < 64, b < 64, c < 64, d < 64 else { return nil }
            output[written] = a << 2 | b >> 4
            output[written + 1] = b << 4 | c >> 2
            output[written + 2] = c << 6 | d
            written += 3
            index += 4
        }
        switch remainder {
        case 2:
            let a = table[Int(input[index])], b = table[Int(input[index + 1])]
            guard a < 64, b < 64, b & 0x0F == 0 else { return nil }
            output[written] = a << 2 | b >> 4
            written += 1
        case 3:
            let a = table[Int(input[index])], b = table[Int(input[index + 1])], c = table[Int(input[index + 2])]
            guard a < 64, b < 64, c < 64, c & 0x03 == 0 else { return nil }
            output[written] = a << 2 | b >> 4
            output[written + 1] = b << 4 | c >> 2
            written += 2
        default:
            break
        }
        return written
    }
}
