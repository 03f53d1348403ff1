import Foundation

/// The rules for emails and passwords at registration and password change.
public enum Credentials {
    /// The fewest characters a password may have.
    public static let minimumPasswordLength = 8

    /// Lower-cased, trimmed form used for uniqueness and sign-in, so that `Ann@X.org` and `ann@x.org` are one account.
    public static func normalize(email: String) -> String {
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// Validates an email: one `@`, a non-empty local part, a dotted domain, no spaces, at most 254 characters.
    public static func validate(email: String) throws(AuthError) -> String {
        let trimmed = email.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard trimmed.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64,
            parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !trimmed.contains(where: { $0.isWhitespace || $0.isNewline || $0 == "<" || $0 == ">" })
        else { throw .invalidEmail }
        return trimmed
    }

    /// Validates a new password: at least 8 characters and at most what bcrypt reads.
    public static func validate(password: String) throws(AuthError) {
        guard password.count >= Self.minimumPasswordLength else {
            throw .weakPassword("a password needs at least \(Self.minimumPasswordLength) characters")
        }
        guard password.utf8.count <= BcryptPasswordHasher.maximumPasswordBytes else {
            throw .weakPassword("a password may have at most \(BcryptPasswordHasher.maximumPasswordBytes) bytes")
        }
    }
}
