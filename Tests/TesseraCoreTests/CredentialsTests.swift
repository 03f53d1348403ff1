import Testing

@testable import TesseraCore

@Suite struct CredentialsTests {
    @Test(arguments: ["a@x.org", "First.Last+tag@example.co.uk", "  padded@x.org  "])
    func plausibleEmailsAreAccepted(email: String) throws {
        _ = try Credentials.validate(email: email)
    }

    @Test(arguments: ["", "no-at", "a@", "@x.org", "a@b@c.org", "a b@x.org", "a@nodot", "a@.x.org", "<a>@x.org"])
    func otherTextIsNotAnEmail(email: String) {
        #expect(throws: AuthError.invalidEmail) { _ = try Credentials.validate(email: email) }
    }

    @Test func emailsAreComparedCaseInsensitively() {
        #expect(Credentials.normalize(email: " Ann@Example.ORG ") == "ann@example.org")
    }

    /// Attack stopped: a second account that every read-back shows as someone else's address. Every control,
    /// format, bidi, private-use, unassigned, noncharacter or default-ignorable code point, anywhere in an address
    /// (each class tried at every position), is refused.
    @Test(arguments: Self.invisibleScalars)
    func invisibleAndControlCharactersAreRefusedAnywhere(scalar: UInt32) {
        let base = "alice@example.org"
        let character = String(Character(Unicode.Scalar(scalar)!))
        for offset in 0...base.count {
            var text = base
            text.insert(contentsOf: character, at: text.index(text.startIndex, offsetBy: offset))
            if character.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && (offset == 0 || offset == base.count) { continue }
            #expect(throws: AuthError.invalidEmail, "U+\(String(scalar, radix: 16)) at \(offset)") { _ = try EmailAddress(text) }
        }
    }

    static let invisibleScalars: [UInt32] = [
        0x00, 0x01, 0x07, 0x08, 0x09, 0x0A, 0x0D, 0x1B, 0x7F, 0x80, 0x9B, 0xAD, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202E,
        0x2060, 0x2066, 0x2069, 0xFEFF, 0x200B, 0xE000, 0xF8FF, 0xFFFE, 0x0378, 0x034F, 0xFE0F, 0x180E, 0x3164, 0x115F, 0x1D173, 0xE0001, 0xE0041,
    ]

    /// Attack stopped: two accounts for one address in two Unicode spellings. Every pair here is one account.
    @Test(arguments: [
        ("jos\u{e9}@example.org", "jose\u{301}@example.org"),
        ("ann@example.org", "\u{FF41}\u{FF4E}\u{FF4E}@example.org"),
        ("ANN@EXAMPLE.ORG", "ann@example.org"),
        ("Ann@Ex\u{FF41}mple.org", "ann@example.org"),
        ("\u{C5}sa@example.org", "A\u{30A}sa@example.org"),
        ("\u{212B}sa@example.org", "\u{E5}sa@example.org"),
    ])
    func addressesAPersonCannotTellApartAreOneAccount(first: String, second: String) throws {
        if let a = try? EmailAddress(first), let b = try? EmailAddress(second) {
            #expect(a.normalized == b.normalized)
        } else {
            // Refusing one of the two spellings is as good: they cannot both exist.
            #expect((try? EmailAddress(first)) == nil || (try? EmailAddress(second)) == nil)
        }
    }

    /// Attack stopped: look-alike letters standing in for ASCII ones (mathematical letters, ligatures, Cyrillic or
    /// Greek letters in a Latin word, a word of Cyrillic letters that all look Latin).
    @Test(arguments: [
        "p\u{430}ypal@example.org", "paypal@ex\u{430}mple.org", "\u{430}\u{440}\u{440}\u{4CF}\u{435}@example.org", "\u{1D41A}nn@example.org",
        "\u{FB01}le@example.org", "\u{24D0}nn@example.org", "ann@\u{3BF}rg.example", "\u{2168}@example.org",
    ])
    func lookAlikesOfASCIIAreRefused(email: String) {
        #expect(throws: AuthError.invalidEmail) { _ = try EmailAddress(email) }
    }

    @Test(arguments: ["jos\u{e9}@example.org", "\u{43C}\u{430}\u{448}\u{430}@\u{43F}\u{440}\u{438}\u{43C}\u{435}\u{440}.\u{440}\u{444}", "\u{7530}\u{4E2D}@example.jp", "m\u{fc}ller@b\u{fc}cher.de"])
    func internationalAddressesInOneScriptAreAccepted(email: String) throws {
        let address = try EmailAddress(email)
        #expect(address.normalized == address.normalized.precomposedStringWithCanonicalMapping)
        // Normalizing is idempotent: the stored form is accepted as input and maps to itself.
        #expect(try EmailAddress(address.normalized).normalized == address.normalized)
    }

    /// Property: for random strings over a mixed alphabet, normalization is idempotent, never yields a control or
    /// format character, and two inputs with the same normalized form look the same once case-folded and NFKC'd.
    @Test func normalizationIsIdempotentAndClean() {
        let alphabet: [String] = ["a", "B", "z", "0", "-", "+", "_", "\u{e9}", "e\u{301}", "\u{FF41}", "\u{0}", "\u{200B}", "\u{430}", "\u{3B1}", " ", "\u{1B}", "\u{7530}", "\u{212B}", "\u{FB01}"]
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        for _ in 0..<20_000 {
            func part() -> String { (0..<Int.random(in: 1...6, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined() }
            let text = part() + "@" + part() + "." + (Bool.random(using: &generator) ? "org" : part())
            guard let address = try? EmailAddress(text) else { continue }
            accepted += 1
            #expect(!address.normalized.unicodeScalars.contains { [.control, .format, .unassigned].contains($0.properties.generalCategory) })
            #expect((try? EmailAddress(address.normalized))?.normalized == address.normalized, "\(text.debugDescription)")
            #expect(address.normalized.precomposedStringWithCompatibilityMapping.lowercased() == address.normalized)
        }
        #expect(accepted > 100)
    }

    @Test func adminSearchWithControlCharactersIsRefused() {
        #expect(throws: AuthError.self) { _ = try EmailAddress.searchFragment("a\u{0}") }
        #expect(throws: AuthError.self) { _ = try EmailAddress.searchFragment("\u{1B}[2J") }
        #expect(try! EmailAddress.searchFragment(" \u{FF21}nn ") == "ann")
    }

    /// bcrypt stops at a NUL: `"\u{0}zzzzzzzz"` would be checked as the empty password.
    @Test(arguments: ["\u{0}zzzzzzzz", "zzzzzzzz\u{0}", "zzzz\u{0}zzzz"])
    func passwordsWithNULAreRefusedWhenSet(password: String) {
        #expect(throws: AuthError.self) { try Credentials.validate(password: password) }
        #expect(!Credentials.couldHaveBeenSet(password: password))
    }

    @Test func signInRefusesPasswordsThatCouldNotHaveBeenSet() {
        #expect(!Credentials.couldHaveBeenSet(password: String(repeating: "x", count: 73)))
        #expect(!Credentials.couldHaveBeenSet(password: ""))
        #expect(Credentials.couldHaveBeenSet(password: String(repeating: "x", count: 72)))
    }

    @Test func passwordsUnderEightCharactersAreWeak() throws {
        #expect(throws: AuthError.self) { try Credentials.validate(password: "1234567") }
        try Credentials.validate(password: "12345678")
    }

    @Test func passwordsBcryptWouldTruncateAreRefused() {
        // bcrypt reads 72 bytes; a longer password would match any password sharing its first 72 bytes.
        #expect(throws: AuthError.self) { try Credentials.validate(password: String(repeating: "x", count: 73)) }
    }

    @Test func opaqueTokensAreHashedAndShapeChecked() {
        let token = OpaqueToken.generate()
        #expect(OpaqueToken.isWellFormed(token))
        #expect(!OpaqueToken.isWellFormed(token + "x"))
        #expect(OpaqueToken.hash(token).count == 64)
        #expect(OpaqueToken.hash(token) != OpaqueToken.hash(OpaqueToken.generate()))
    }
}
