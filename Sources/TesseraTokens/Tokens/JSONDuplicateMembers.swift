import Foundation

/// Finds a member named twice in one JSON object, anywhere in a document.
///
/// JSON parsers disagree on `{"alg":"HS256","alg":"none"}` (first wins, last wins, error), and a verifier that reads
/// one while something else reads the other can be fooled (RFC 8725 §3.9 warns of such confusion; RFC 7515 §4
/// requires rejecting duplicate header names or taking the last, and Tessera rejects). Foundation's `JSONDecoder`
/// does not say, so token headers and payloads pass through this scan first. Names are compared after unescaping,
/// so `"al\u0067"` and `"alg"` are the same member.
enum JSONDuplicateMembers {
    /// Whether some object in the document has two members with one name. Malformed input answers false: it is
    /// refused by the decoder that reads it next.
    static func contains(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var scanner = Scanner(bytes: bytes)
        return scanner.scanValue(depth: 0) == .duplicate
    }

    static func contains(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { Self.contains($0) }
    }

    enum Outcome: Equatable {
        case ok
        case duplicate
        case malformed
    }

    struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        /// Deeper nesting is refused as malformed (the decoder then refuses it too); tokens are flat.
        static let maximumDepth = 64

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        mutating func skipSpace() {
            while self.index < self.bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(self.bytes[self.index]) { self.index += 1 }
        }

        mutating func scanValue(depth: Int) -> Outcome {
            guard depth < Self.maximumDepth else { return .malformed }
            self.skipSpace()
            guard self.index < self.bytes.count else { return .malformed }
            switch self.bytes[self.index] {
            case 0x7B: return self.scanObject(depth: depth)
            case 0x5B: return self.scanArray(depth: depth)
            case 0x22: return self.scanString() == nil ? .malformed : .ok
            default:
                // Numbers and literals: the characters they may contain; the decoder checks their shape.
                let start = self.index
                while self.index < self.bytes.count, Self.isScalarCharacter(self.bytes[self.index]) { self.index += 1 }
                return self.index > start ? .ok : .malformed
            }
        }

        static func isScalarCharacter(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x2B || byte == 0x2E || byte == 0x45
        }

        mutating func scanObject(depth: Int) -> Outcome {
            self.index += 1
            var names: [[UInt8]] = []
            self.skipSpace()
            if self.index < self.bytes.count, self.bytes[self.index] == 0x7D {
                self.index += 1
                return .ok
            }
            while true {
                self.skipSpace()
                guard let name = self.scanString() else { return .malformed }
                if names.contains(name) { return .duplicate }
                names.append(name)
                self.skipSpace()
                guard self.index < self.bytes.count, self.bytes[self.index] == 0x3A else { return .malformed }
                self.index += 1
                let value = self.scanValue(depth: depth + 1)
                guard value == .ok else { return value }
                if let end = self.afterElement(closing: 0x7D) { return end }
            }
        }

        /// After a member or an element: a comma (nil: another follows), or the closing bracket (`.ok`).
        mutating func afterElement(closing: UInt8) -> Outcome? {
            self.skipSpace()
            guard self.index < self.bytes.count else { return .malformed }
            if self.bytes[self.index] == 0x2C {
                self.index += 1
                return nil
            }
            guard self.bytes[self.index] == closing else { return .malformed }
            self.index += 1
            return .ok
        }

        mutating func scanArray(depth: Int) -> Outcome {
            self.index += 1
            self.skipSpace()
            if self.index < self.bytes.count, self.bytes[self.index] == 0x5D {
                self.index += 1
                return .ok
            }
            while true {
                let value = self.scanValue(depth: depth + 1)
                guard value == .ok else { return value }
                if let end = self.afterElement(closing: 0x5D) { return end }
            }
        }

        /// A string's content with escapes resolved (as UTF-8, with `\u` escapes as their UTF-16 code units
        /// combined), or nil when malformed.
        mutating func scanString() -> [UInt8]? {
            guard self.index < self.bytes.count, self.bytes[self.index] == 0x22 else { return nil }
            self.index += 1
            var content: [UInt8] = []
            var units: [UInt16] = []
            func flushUnits() {
                guard !units.isEmpty else { return }
                content.append(contentsOf: Array(String(decoding: units, as: UTF16.self).utf8))
                units.removeAll()
            }
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                switch byte {
                case 0x22:
                    self.index += 1
                    flushUnits()
                    return content
                case 0x5C:
                    guard self.index + 1 < self.bytes.count else { return nil }
                    let escape = self.bytes[self.index + 1]
                    self.index += 2
                    if escape == 0x75 {
                        guard self.index + 4 <= self.bytes.count, let unit = Self.hex(self.bytes[self.index..<(self.index + 4)]) else { return nil }
                        units.append(unit)
                        self.index += 4
                        continue
                    }
                    flushUnits()
                    switch escape {
                    case 0x22, 0x5C, 0x2F: content.append(escape)
                    case 0x62: content.append(0x08)
                    case 0x66: content.append(0x0C)
                    case 0x6E: content.append(0x0A)
                    case 0x72: content.append(0x0D)
                    case 0x74: content.append(0x09)
                    default: return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    flushUnits()
                    content.append(byte)
                    self.index += 1
                }
            }
            return nil
        }

        static func hex(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> UInt16? {
            var value: UInt16 = 0
            for digit in digits {
                guard let nibble = UUID.hexValue(digit) else { return nil }
                value = value << 4 | UInt16(nibble)
            }
            return value
        }
    }
}
