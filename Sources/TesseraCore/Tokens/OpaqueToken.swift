import Crypto
import Foundation
import TesseraTokens

/// Opaque bearer secrets (refresh tokens): 256 random bits, shown once, stored only as their SHA-256.
public enum OpaqueToken {
    /// A new token: 32 random bytes, base64url (43 characters).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }

    /// The hex SHA-256 of a token: what the database keeps and looks up by.
    ///
    /// Looking up by a hash of a 256-bit secret leaks nothing useful through timing, so no constant-time compare
    /// is needed after it.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether a presented string could be one of ours at all (length and alphabet), before hashing it.
    public static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && Base64URL.decode(Substring(token))?.count == 32
    }
}
