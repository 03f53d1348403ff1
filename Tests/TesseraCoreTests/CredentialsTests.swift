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
