import Crypto
import Foundation
import JWTKit

/// The HS256 key that signs and verifies access tokens.
public struct SigningKey: Sendable {
    /// The smallest secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
    public static let minimumSecretLength = 32

    /// Signs (jwt-kit writes the JWT).
    let keys: JWTKeyCollection
    /// Verifies: HMAC-SHA256 with its pads hashed once, constant-time compare.
    let hmac: PreparedHMAC
    /// The encoded headers our signer writes, so that verification can recognise them without decoding them. jwt-kit
    /// keeps header members in a dictionary, so it writes `alg` and `typ` in either order, varying from token to token.
    let canonicalHeaders: [[UInt8]]

    /// - Throws: ``AuthError/weakSecret(minimumBytes:)`` when the secret is shorter than 32 bytes.
    public init(secret: String) async throws {
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw AuthError.weakSecret(minimumBytes: Self.minimumSecretLength)
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
        self.hmac = PreparedHMAC(key: SymmetricKey(data: Data(secret.utf8)))
        let members = [#""alg":"\#(AccessTokenVerifier.algorithm)""#, #""typ":"\#(AccessTokenVerifier.tokenType)""#]
        self.canonicalHeaders = [members, members.reversed()].map { Array(Base64URL.encode(Array("{\($0.joined(separator: ","))}".utf8)).utf8) }
    }

    /// A new random secret: 48 random bytes, base64url, for development set-ups.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
