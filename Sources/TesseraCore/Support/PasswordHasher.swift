import TesseraTokens

/// Hashes and checks passwords. Implementations must not block the caller's executor.
public protocol PasswordHasher: Sendable {
    /// A salted hash of the password.
    func hash(_ password: String) async throws -> String
    /// Whether the password matches the hash, in time independent of where they differ.
    func verify(_ password: String, against hash: String) async throws -> Bool
}
