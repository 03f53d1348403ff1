import Foundation
import TesseraTokens

/// The rules for emails and passwords at registration and password change.
public enum Credentials {
    /// The fewest characters a password may have.
    public static let minimumPasswordLength = 8

    /// The normalized form of an email for look-ups (see ``EmailAddress``), or nil when no account can have it.
    public static func normalize(email: String) -> String? {
        EmailAddress.normalized(email)
    }

    /// Checks and normalizes an email for a new account; ``AuthError/invalidEmail`` when it is not acceptable.
    public static func validate(email: String) throws(AuthError) -> EmailAddress {
        try EmailAddress(email)
    }

    /// Validates a new password: at least 8 characters, at most what bcrypt reads, and no NUL (bcrypt stops at the
    /// first NUL, so `"\u{0}zzzzzzzz"` would be checked as the empty password).
    public static func validate(password: String) throws(AuthError) {
        guard !password.utf8.contains(0) else { throw .weakPassword("a password may not contain the NUL character") }
        guard password.count >= Self.minimumPasswordLength else {
            throw .weakPassword("a password needs at least \(Self.minimumPasswordLength) characters")
        }
        guard password.utf8.count <= BcryptPasswordHasher.maximumPasswordBytes else {
            throw .weakPassword("a password may have at most \(BcryptPasswordHasher.maximumPasswordBytes) bytes")
        }
    }

    /// Whether a password could have been set under ``validate(password:)``'s byte rules. Sign-in refuses any other
    /// without handing bcrypt a value it would cut short.
    public static func couldHaveBeenSet(password: String) -> Bool {
        password.utf8.count <= BcryptPasswordHasher.maximumPasswordBytes && !password.utf8.contains(0)
            && password.count >= Self.minimumPasswordLength
    }
}
