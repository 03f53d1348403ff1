import Foundation
import TesseraTokens

/// An account identifier: an email address checked and normalized by one rule, at every entry (API, pages, CLI,
/// admin search), so that two addresses a person cannot tell apart are one account.
///
/// The rule is PRECIS (RFC 8264) with the profiles of RFC 8265, applied to the local part and the domain each:
/// `preserved` follows **UsernameCasePreserved** (width mapping, NFC, the IdentifierClass) and is what is shown;
/// `normalized` follows **UsernameCaseMapped** (the same, then Unicode `toLowerCase`) and is what is stored unique
/// and compared. On top of PRECIS, two rules against look-alikes that PRECIS leaves to applications (UTS #39):
/// each part's letters come from one script (no Cyrillic `а` inside a Latin word), and a part written wholly in
/// Cyrillic or Greek letters that all look like Latin ones (`аррӏе`) is refused. Not covered: RFC 5893's bidi
/// rule beyond refusing bidi controls (they are format characters), and IDNA's A-labels (`xn--…`), which are
/// kept as typed.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The enforced form, case kept: what the account shows.
    public let preserved: String
    /// The enforced, case-mapped form: what is unique and what sign-in compares.
    public let normalized: String

    /// The longest address accepted (RFC 5321: 254 octets in a path; 64 for the local part).
    public static let maximumBytes = 254
    public static let maximumLocalPartBytes = 64

    /// Checks and normalizes typed input; surrounding white space is dropped. Throws ``AuthError/invalidEmail``.
    public init(_ input: String) throws(AuthError) {
        let trimmed = Self.trimmingWhiteSpace(input)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 4 * Self.maximumBytes else { throw .invalidEmail }
        // Width mapping (RFC 8264 §9.1): fullwidth and halfwidth forms become their ordinary characters, then NFC.
        let preserved = Self.mapWidth(trimmed).precomposedStringWithCanonicalMapping
        let parts = preserved.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, preserved.utf8.count <= Self.maximumBytes else { throw .invalidEmail }
        let local = parts[0]
        let domain = parts[1]
        guard !local.isEmpty, local.utf8.count <= Self.maximumLocalPartBytes, !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..")
        else { throw .invalidEmail }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && !$0.hasPrefix("-") && !$0.hasSuffix("-") }) else {
            throw .invalidEmail
        }
        for (part, inDomain) in [(local, false)] + labels.map({ ($0, true) }) {
            guard Self.isIdentifierClass(part, inDomain: inDomain), Self.isSingleScript(part), !Self.isWholeScriptLookAlike(part) else {
                throw .invalidEmail
            }
        }
        let normalized = preserved.lowercased().precomposedStringWithCanonicalMapping
        // Case mapping must not make a valid identifier invalid or move it out of NFC (RFC 8264 §7: idempotence).
        guard normalized.unicodeScalars.allSatisfy({ Self.isAllowed($0, inDomain: false) || $0 == "@" }) else { throw .invalidEmail }
        self.preserved = preserved
        self.normalized = normalized
    }

    /// The normalized form of typed input for a look-up, or nil when no account can have it (sign-in then costs
    /// the same as for an unknown address).
    public static func normalized(_ input: String) -> String? {
        try? EmailAddress(input).normalized
    }

    public var description: String { self.preserved }

    /// A search over addresses, mapped as addresses are so that it finds what it looks like; text with control,
    /// format or unassigned characters is refused (``AuthError/invalidArgument(_:)``) rather than matching anything.
    public static func searchFragment(_ input: String) throws(AuthError) -> String {
        let mapped = Self.mapWidth(Self.trimmingWhiteSpace(input)).precomposedStringWithCanonicalMapping
        guard mapped.utf8.count <= 4 * Self.maximumBytes,
            mapped.unicodeScalars.allSatisfy({ $0 == "@" || $0 == " " || Self.isAllowed($0, inDomain: false) })
        else { throw .invalidArgument("the search may hold only characters an email address can have") }
        return mapped.lowercased()
    }

    // MARK: The rules

    /// Drops Unicode White_Space at both ends, and nothing else: Foundation's `CharacterSet.whitespaces` on Linux also
    /// holds U+200B (a format character), which must be refused, not quietly trimmed.
    static func trimmingWhiteSpace(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }

    /// Fullwidth and halfwidth forms (U+FF00–U+FFEF) mapped to their compatibility decomposition.
    static func mapWidth(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { (0xFF00...0xFFEF).contains($0.value) }) else { return text }
        var mapped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if (0xFF00...0xFFEF).contains(scalar.value) {
                mapped.append(contentsOf: String(scalar).precomposedStringWithCompatibilityMapping.unicodeScalars)
            } else {
                mapped.append(scalar)
            }
        }
        return String(mapped)
    }

    /// PRECIS IdentifierClass (RFC 8264 §4.2) for one part, with what an address's syntax allows of ASCII.
    static func isIdentifierClass(_ part: Substring, inDomain: Bool) -> Bool {
        part.unicodeScalars.allSatisfy { Self.isAllowed($0, inDomain: inDomain) }
    }

    /// One code point: printable ASCII except what address syntax reserves, or a letter, digit or combining mark
    /// (LetterDigits) that is assigned, not default-ignorable and has no compatibility decomposition (HasCompat).
    static func isAllowed(_ scalar: Unicode.Scalar, inDomain: Bool) -> Bool {
        if scalar.isASCII {
            if inDomain { return scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" }
            guard (0x21...0x7E).contains(scalar.value) else { return false }
            return !"\"(),:;<>@[\\]`".unicodeScalars.contains(scalar)
        }
        let properties = scalar.properties
        switch properties.generalCategory {
        case .lowercaseLetter, .uppercaseLetter, .otherLetter, .modifierLetter, .decimalNumber, .nonspacingMark, .spacingMark: break
        default: return false
        }
        if properties.isDefaultIgnorableCodePoint || properties.isNoncharacterCodePoint { return false }
        // HasCompat: a character with a compatibility decomposition (ligatures, mathematical letters, circled forms).
        return String(scalar).precomposedStringWithCompatibilityMapping.unicodeScalars.elementsEqual(String(scalar).unicodeScalars)
    }

    /// Whether the letters of a part come from one script (Han with Hiragana, Katakana and Hangul counting as one,
    /// as UTS #39's "highly restrictive" level allows). Digits and marks belong to any script.
    static func isSingleScript(_ part: Substring) -> Bool {
        var seen: Script?
        for scalar in part.unicodeScalars where scalar.properties.isAlphabetic && scalar.properties.generalCategory != .nonspacingMark {
            let script = Script(scalar)
            if let seen, seen != script { return false }
            seen = script
        }
        return true
    }

    /// Whether a part written wholly in Cyrillic or Greek letters uses only letters that look like Latin ones, so
    /// that it reads as a Latin word (`аррӏе`, `ѕсоре`): UTS #39's whole-script confusables, for the letters that
    /// matter most.
    static func isWholeScriptLookAlike(_ part: Substring) -> Bool {
        let letters = part.unicodeScalars.filter { $0.properties.isAlphabetic }
        guard let first = letters.first, Script(first) == .cyrillic || Script(first) == .greek else { return false }
        return letters.allSatisfy { Self.latinLookAlikes.contains($0) }
    }

    /// Cyrillic and Greek letters that render like Latin letters in common fonts (from Unicode's confusables.txt).
    static let latinLookAlikes: Set<Unicode.Scalar> = Set(
        "аеорсухіјѕԁԛԝһӏвкмнтгпАВЕКМНОРСТУХІЈЅԜҮӀ"
            .unicodeScalars
            + "αβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ".unicodeScalars
    )

    /// A coarse script of a letter, by the blocks that hold each script's letters.
    enum Script: Equatable {
        case latin, greek, cyrillic, armenian, hebrew, arabic, eastAsian
        case other(UInt32)

        init(_ scalar: Unicode.Scalar) {
            switch scalar.value {
            case 0x41...0x5A, 0x61...0x7A, 0xAA, 0xBA, 0xC0...0x24F, 0x250...0x2AF, 0x1D00...0x1D7F, 0x1E00...0x1EFF, 0x2C60...0x2C7F,
                0xA720...0xA7FF, 0xAB30...0xAB6F:
                self = .latin
            case 0x370...0x3FF, 0x1F00...0x1FFF: self = .greek
            case 0x400...0x52F, 0x1C80...0x1C8F, 0x2DE0...0x2DFF, 0xA640...0xA69F: self = .cyrillic
            case 0x530...0x58F: self = .armenian
            case 0x590...0x5FF: self = .hebrew
            case 0x600...0x6FF, 0x750...0x77F, 0x8A0...0x8FF: self = .arabic
            case 0x1100...0x11FF, 0x3040...0x30FF, 0x3130...0x318F, 0x31F0...0x31FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xAC00...0xD7AF,
                0x20000...0x3134F:
                self = .eastAsian
            default: self = .other(scalar.value >> 7)
            }
        }
    }
}
