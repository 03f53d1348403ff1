import Crypto
import Foundation
import JWTKit
import TesseraTokens

/// One key that signs and verifies access tokens, named by its `kid`: a ``VerificationKey`` and, when this
/// instance may sign with it, its signer (jwt-kit writes the JWT). A key that only verifies (a previous key whose
/// private half was destroyed, a key of another instance not yet current) has no signer.
public struct SigningKey: Sendable {
    /// The smallest secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
    public static let minimumSecretLength = VerificationKey.minimumSecretLength

    /// What checks this key's signatures.
    public let verification: VerificationKey
    /// Signs; nil for a key that only verifies.
    let signer: JWTKeyCollection?

    public var kid: String { self.verification.kid }
    public var algorithm: SigningAlgorithm { self.verification.algorithm }
    /// The public key as a JWK (RFC 7517/8037), nil for a secret.
    public var publicJWK: [String: String]? { self.verification.publicJWK }
    /// Whether this key can sign (its private half or secret is here).
    public var canSign: Bool { self.signer != nil }

    private init(verification: VerificationKey, signer: JWTKeyCollection?) {
        self.verification = verification
        self.signer = signer
    }

    /// An HS256 key from a secret of at least 32 bytes.
    /// - Throws: ``AuthError/weakSecret(minimumBytes:)`` when the secret is shorter than 32 bytes.
    public init(secret: String) async throws {
        let verification = try VerificationKey(secret: secret)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: verification.kid))
        self.init(verification: verification, signer: keys)
    }

    /// An Ed25519 key; with its private half it signs.
    public static func ed25519(publicKey: Curve25519.Signing.PublicKey, privateKey: Curve25519.Signing.PrivateKey? = nil) async -> SigningKey {
        let verification = VerificationKey(ed25519: publicKey)
        var signer: JWTKeyCollection?
        if let privateKey {
            let keys = JWTKeyCollection()
            await keys.add(eddsa: EdDSA.PrivateKey(backing: privateKey), kid: JWKIdentifier(string: verification.kid))
            signer = keys
        }
        return SigningKey(verification: verification, signer: signer)
    }

    /// A P-256 key; with its private half it signs.
    public static func p256(publicKey: P256.Signing.PublicKey, privateKey: P256.Signing.PrivateKey? = nil) async throws -> SigningKey {
        let verification = VerificationKey(p256: publicKey)
        var signer: JWTKeyCollection?
        if let privateKey {
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: JWKIdentifier(string: verification.kid))
            signer = keys
        }
        return SigningKey(verification: verification, signer: signer)
    }

    /// A key of an asymmetric algorithm from its stored raw forms (public key, and private key when it may sign).
    public static func asymmetric(_ algorithm: SigningAlgorithm, publicKey: [UInt8], privateKey: [UInt8]?) async throws -> SigningKey {
        switch algorithm {
        case .edDSA:
            return await .ed25519(
                publicKey: try Curve25519.Signing.PublicKey(rawRepresentation: publicKey),
                privateKey: try privateKey.map { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
            )
        case .es256:
            return try await .p256(
                publicKey: try P256.Signing.PublicKey(rawRepresentation: publicKey),
                privateKey: try privateKey.map { try P256.Signing.PrivateKey(rawRepresentation: $0) }
            )
        case .hs256:
            throw AuthError.invalidToken(reason: "HS256 keys are secrets, not key pairs")
        }
    }

    /// A new key pair: its public and private halves in their raw forms.
    public static func generatePair(_ algorithm: SigningAlgorithm) -> (publicKey: [UInt8], privateKey: [UInt8])? {
        switch algorithm {
        case .edDSA:
            let key = Curve25519.Signing.PrivateKey()
            return (Array(key.publicKey.rawRepresentation), Array(key.rawRepresentation))
        case .es256:
            let key = P256.Signing.PrivateKey()
            return (Array(key.publicKey.rawRepresentation), Array(key.rawRepresentation))
        case .hs256:
            return nil
        }
    }

    /// The `kid` of an HS256 secret (``VerificationKey/secretKid(_:)``).
    public static func secretKid(_ secret: String) -> String { VerificationKey.secretKid(secret) }

    /// The JWK members of a raw public key and its `kid` (``VerificationKey/publicMembers(_:publicKey:)``).
    public static func publicMembers(_ algorithm: SigningAlgorithm, publicKey: [UInt8]) -> (jwk: [String: String], kid: String) {
        VerificationKey.publicMembers(algorithm, publicKey: publicKey)
    }

    /// A new random secret: 48 random bytes, base64url, for development set-ups.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
