import Crypto
import Foundation
import JWTKit

/// The HS256 key that signs and verifies access tokens.
public struct SigningKey: Sendable {
    /// The smallest secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
    public static let minimumSecretLength = 32

    let keys: JWTKeyCollection

    /// - Throws: ``AuthError/weakSecret`` when the secret is shorter than 32 bytes.
    public init(secret: String) async throws {
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw AuthError.weakSecret(minimumBytes: Self.minimumSecretLength)
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
    }

    /// A new random secret: 48 random bytes, base64url, for development set-ups.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
