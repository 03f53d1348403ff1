import Crypto
import Foundation
import JWTKit

/// The algorithms an access token may be signed with; a deployment pins one (`JWT_ALGORITHM`).
public enum SigningAlgorithm: String, Sendable, CaseIterable, Codable {
    /// HMAC-SHA256 with a shared secret: only holders of the secret can check a token.
    case hs256 = "HS256"
    /// Ed25519 (RFC 8037): anyone with the published key can check a token.
    case edDSA = "EdDSA"
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    case es256 = "ES256"

    /// Whether the key has a public half that is published in the JWKS.
    public var isAsymmetric: Bool { self != .hs256 }

    /// The length of a signature in bytes.
    var signatureLength: Int {
        switch self {
        case .hs256: SHA256.byteCount
        case .edDSA, .es256: 64
        }
    }
}

/// One key that signs and verifies access tokens, named by its `kid`.
///
/// An HS256 key is a secret; its `kid` is `hs_` and a prefix of a hash of it, never the secret. An EdDSA or ES256
/// key is a key pair whose `kid` is `ed_` or `es_` and its RFC 7638 thumbprint (the prefix names the algorithm and
/// keeps a `kid` from starting with `-`, which a command line would take for an option); a key that only verifies (a previous key whose private half
/// was destroyed, a key of another instance not yet current) has no private half.
public struct SigningKey: Sendable {
    /// The smallest secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
    public static let minimumSecretLength = 32

    enum Check: Sendable {
        case hmac(PreparedHMAC)
        case ed25519(Curve25519.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
    }

    public let kid: String
    public let algorithm: SigningAlgorithm
    let check: Check
    /// Signs (jwt-kit writes the JWT); nil for a key that only verifies.
    let signer: JWTKeyCollection?
    /// The encoded headers our signer writes with this key, so that verification recognises them without decoding
    /// them. jwt-kit keeps header members in a dictionary, so it writes them in any order, varying from token to token.
    let canonicalHeaders: [[UInt8]]
    /// The public key as a JWK (RFC 7517/8037), nil for a secret.
    public let publicJWK: [String: String]?

    /// Whether this key can sign (its private half or secret is here).
    public var canSign: Bool { self.signer != nil }

    private init(kid: String, algorithm: SigningAlgorithm, check: Check, signer: JWTKeyCollection?, publicJWK: [String: String]?) {
        self.kid = kid
        self.algorithm = algorithm
        self.check = check
        self.signer = signer
        self.publicJWK = publicJWK
        let members = [#""alg":"\#(algorithm.rawValue)""#, #""typ":"\#(AccessTokenVerifier.tokenType)""#, #""kid":"\#(kid)""#]
        self.canonicalHeaders = Self.permutations(of: members).map { Array(Base64URL.encode(Array("{\($0.joined(separator: ","))}".utf8)).utf8) }
    }

    /// An HS256 key from a secret of at least 32 bytes.
    /// - Throws: ``AuthError/weakSecret(minimumBytes:)`` when the secret is shorter than 32 bytes.
    public init(secret: String) async throws {
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw AuthError.weakSecret(minimumBytes: Self.minimumSecretLength)
        }
        let kid = Self.secretKid(secret)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        self.init(kid: kid, algorithm: .hs256, check: .hmac(PreparedHMAC(key: SymmetricKey(data: Data(secret.utf8)))), signer: keys, publicJWK: nil)
    }

    /// An Ed25519 key; with its private half it signs.
    public static func ed25519(publicKey: Curve25519.Signing.PublicKey, privateKey: Curve25519.Signing.PrivateKey? = nil) async -> SigningKey {
        let (jwk, kid) = Self.publicMembers(.edDSA, publicKey: Array(publicKey.rawRepresentation))
        var signer: JWTKeyCollection?
        if let privateKey {
            let keys = JWTKeyCollection()
            await keys.add(eddsa: EdDSA.PrivateKey(backing: privateKey), kid: JWKIdentifier(string: kid))
            signer = keys
        }
        return SigningKey(kid: kid, algorithm: .edDSA, check: .ed25519(publicKey), signer: signer, publicJWK: jwk.merging(["alg": "EdDSA", "use": "sig", "kid": kid]) { a, _ in a })
    }

    /// A P-256 key; with its private half it signs.
    public static func p256(publicKey: P256.Signing.PublicKey, privateKey: P256.Signing.PrivateKey? = nil) async throws -> SigningKey {
        let (jwk, kid) = Self.publicMembers(.es256, publicKey: Array(publicKey.rawRepresentation))
        var signer: JWTKeyCollection?
        if let privateKey {
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: JWKIdentifier(string: kid))
            signer = keys
        }
        return SigningKey(kid: kid, algorithm: .es256, check: .p256(publicKey), signer: signer, publicJWK: jwk.merging(["alg": "ES256", "use": "sig", "kid": kid]) { a, _ in a })
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

    /// Whether `signature` is this key's over `input`. HMACs are compared in constant time.
    func isValid(signature: UnsafeRawBufferPointer, for input: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == self.algorithm.signatureLength else { return false }
        switch self.check {
        case .hmac(let hmac):
            return hmac.isValid(signature, for: input)
        case .ed25519(let key):
            return key.isValidSignature(signature, for: input)
        case .p256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: input)
        }
    }

    /// The `kid` of an HS256 secret: the first 12 bytes of SHA-256 over a label and the secret, base64url. It names
    /// the secret without revealing it (and is no help in guessing a secret of 32 random bytes).
    public static func secretKid(_ secret: String) -> String {
        "hs_" + Base64URL.encode(Array(SHA256.hash(data: Array("tessera kid\u{0}".utf8) + Array(secret.utf8)).prefix(12)))
    }

    /// The JWK members that identify a raw public key (Ed25519: 32 bytes; P-256: x || y, 32 bytes each), and the
    /// `kid` named after them: `ed_` / `es_` and their RFC 7638 thumbprint.
    public static func publicMembers(_ algorithm: SigningAlgorithm, publicKey: [UInt8]) -> (jwk: [String: String], kid: String) {
        let jwk: [String: String]
        let prefix: String
        switch algorithm {
        case .edDSA:
            jwk = ["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(publicKey)]
            prefix = "ed_"
        case .hs256:
            preconditionFailure("an HS256 key is a secret, not a public key")
        case .es256:
            jwk = ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(publicKey.prefix(32)), "y": Base64URL.encode(publicKey.dropFirst(32))]
            prefix = "es_"
        }
        return (jwk, prefix + Self.thumbprint(jwk))
    }

    /// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in lexical order, base64url.
    public static func thumbprint(_ jwk: [String: String]) -> String {
        let required = jwk["kty"] == "EC" ? ["crv", "kty", "x", "y"] : ["crv", "kty", "x"]
        let canonical = "{" + required.map { #""\#($0)":"\#(jwk[$0] ?? "")""# }.joined(separator: ",") + "}"
        return Base64URL.encode(Array(SHA256.hash(data: Array(canonical.utf8))))
    }

    private static func permutations(of members: [String]) -> [[String]] {
        guard members.count > 1 else { return [members] }
        return members.indices.flatMap { index in
            var rest = members
            let first = rest.remove(at: index)
            return permutations(of: rest).map { [first] + $0 }
        }
    }

    /// A new random secret: 48 random bytes, base64url, for development set-ups.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
