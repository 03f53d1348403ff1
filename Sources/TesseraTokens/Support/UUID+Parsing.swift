import Foundation

extension UUID {
    /// Parses the 36-character form `8-4-4-4-12` of hex digits in either case, as `UUID(uuidString:)` does, without
    /// Foundation's `sscanf`-based parser on Linux: that parser was a quarter of the start-up time with a million
    /// revocations in the log, and a visible part of verifying a token the server has not seen before.
    public init?(parsing text: some StringProtocol) {
        let parsed: UUID?? = text.utf8.withContiguousStorageIfAvailable { UUID.parse($0) }
        if let parsed {
            guard let parsed else { return nil }
            self = parsed
        } else {
            guard let parsed = Array(text.utf8).withUnsafeBufferPointer({ UUID.parse($0) }) else { return nil }
            self = parsed
        }
    }

    /// Parses the 36 bytes of the textual form; see ``init(parsing:)``.
    public init?(parsing bytes: UnsafeBufferPointer<UInt8>) {
        guard let parsed = UUID.parse(bytes) else { return nil }
        self = parsed
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard bytes.count == 36 else { return nil }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let valid = withUnsafeMutableBytes(of: &raw) { output -> Bool in
            var input = 0
            for index in 0..<16 {
                if input == 8 || input == 13 || input == 18 || input == 23 {
                    guard bytes[input] == UInt8(ascii: "-") else { return false }
                    input += 1
                }
                guard let high = Self.hexValue(bytes[input]), let low = Self.hexValue(bytes[input + 1]) else { return false }
                output[index] = high << 4 | low
                input += 2
            }
            return true
        }
        return valid ? UUID(uuid: raw) : nil
    }

    /// The value of one hexadecimal digit (either case), or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte &- UInt8(ascii: "A") &+ 10
        default: nil
        }
    }
}

extension UUID {
    /// The canonical lower-case form (`6ba7b810-9dad-11d1-80b4-00c04fd430c8`), as ids appear in tokens, the database and
    /// the API. Written directly: Foundation's `uuidString` goes through `snprintf` on Linux and is then lower-cased.
    public var lowercasedString: String {
        String(unsafeUninitializedCapacity: 36) { self.writeLowercased(into: $0) }
    }

    /// Writes the 36 characters of ``lowercasedString`` at the start of `output` (which must hold 36) and returns 36.
    @discardableResult
    public func writeLowercased(into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        precondition(output.count >= 36, "a UUID is 36 characters")
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: self.uuid) { bytes in
            var position = 0
            for (index, byte) in bytes.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    output[position] = UInt8(ascii: "-")
                    position += 1
                }
                output[position] = digits.utf8Start[Int(byte >> 4)]
                output[position + 1] = digits.utf8Start[Int(byte & 0x0F)]
                position += 2
            }
            return position
        }
    }
}
