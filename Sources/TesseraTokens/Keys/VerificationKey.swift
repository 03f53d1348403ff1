import Crypto
import Foundation

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
    package var signatureLength: Int {
        switch self {
        case .hs256: SHA256.byteCount
        case .edDSA, .es256: 64
        }
    }
}

/// What checks the signature of an access token, named by its `kid`: the public half of a key pair, or for HS256
/// the shared secret. Tessera's server and every guarded service verify with it; only the server signs
/// (TesseraCore's `SigningKey` pairs one of these with a signer).
///
/// An HS256 key's `kid` is `hs_` and a prefix of a hash of the secret, never the secret. An EdDSA or ES256 key's
/// `kid` is `ed_` or `es_` and its RFC 7638 thumbprint (the prefix names the algorithm and keeps a `kid` from
/// starting with `-`, which a command line would take for an option).
public struct VerificationKey: Sendable {
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
    /// The encoded headers Tessera's signer writes with this key, so that verification recognises them without
    /// decoding them. jwt-kit keeps header members in a dictionary, so it writes them in any order.
    let canonicalHeaders: [[UInt8]]
    /// The public key as a JWK (RFC 7517/8037), nil for a secret.
    public let publicJWK: [String: String]?

    private init(kid: String, algorithm: SigningAlgorithm, check: Check, publicJWK: [String: String]?) {
        self.kid = kid
        self.algorithm = algorithm
        self.check = check
        self.publicJWK = publicJWK
        let members = [#""alg":"\#(algorithm.rawValue)""#, #""typ":"\#(AccessTokenVerifier.tokenType)""#, #""kid":"\#(kid)""#]
        self.canonicalHeaders = Self.permutations(of: members).map { Array(Base64URL.encode(Array("{\($0.joined(separator: ","))}".utf8)).utf8) }
    }

    /// An HS256 key from a secret of at least 32 bytes.
    /// - Throws: ``AuthError/weakSecret(minimumBytes:)`` when the secret is shorter than 32 bytes.
    public init(secret: String) throws(AuthError) {
        guard secret.utf8.count >= Self.minimumSecretLength else { throw .weakSecret(minimumBytes: Self.minimumSecretLength) }
        self.init(kid: Self.secretKid(secret), algorithm: .hs256, check: .hmac(PreparedHMAC(key: SymmetricKey(data: Data(secret.utf8)))), publicJWK: nil)
    }

    /// An Ed25519 public key.
    public init(ed25519 publicKey: Curve25519.Signing.PublicKey) {
        let (jwk, kid) = Self.publicMembers(.edDSA, publicKey: Array(publicKey.rawRepresentation))
        self.init(kid: kid, algorithm: .edDSA, check: .ed25519(publicKey), publicJWK: jwk.merging(["alg": "EdDSA", "use": "sig", "kid": kid]) { a, _ in a })
    }

    /// A P-256 public key.
    public init(p256 publicKey: P256.Signing.PublicKey) {
        let (jwk, kid) = Self.publicMembers(.es256, publicKey: Array(publicKey.rawRepresentation))
        self.init(kid: kid, algorithm: .es256, check: .p256(publicKey), publicJWK: jwk.merging(["alg": "ES256", "use": "sig", "kid": kid]) { a, _ in a })
    }

    /// A public key of an asymmetric algorithm from its raw form (Ed25519: 32 bytes; P-256: x || y, 32 bytes each).
    public init(_ algorithm: SigningAlgorithm, publicKey: [UInt8]) throws {
        switch algorithm {
        case .edDSA: self.init(ed25519: try Curve25519.Signing.PublicKey(rawRepresentation: publicKey))
        case .es256: self.init(p256: try P256.Signing.PublicKey(rawRepresentation: publicKey))
        case .hs256: throw AuthError.invalidToken(reason: "HS256 keys are secrets, not public keys")
        }
    }

    /// Whether `signature` is this key's over `input`. HMACs are compared in constant time.
    package func isValid(signature: UnsafeRawBufferPointer, for input: UnsafeRawBufferPointer) -> Bool {
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
}
