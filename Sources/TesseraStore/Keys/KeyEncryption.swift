import Crypto
import Foundation
import TesseraCore

/// Seals private signing keys for the database (AES-256-GCM) under key-encryption keys that never reach it
/// (`TESSERA_KEY_ENCRYPTION_KEY`, several comma-separated, newest first). Each sealed key records which one sealed
/// it; a key sealed under an older one is opened with it and sealed again under the newest, so that an old
/// key-encryption key can be dropped once every instance has run with the new one first.
public struct KeyEncryption: Sendable {
    public struct Key: Sendable {
        /// A short public name for the key: a prefix of a hash of the derived key, never the secret.
        public let id: String
        let key: SymmetricKey
    }

    /// The smallest secret accepted, in bytes.
    public static let minimumSecretLength = 32

    /// Newest first: the first seals, every one opens.
    public let keys: [Key]

    /// - Throws: ``KeyEncryptionError`` for a secret shorter than 32 bytes or no secret at all.
    public init(secrets: [String]) throws {
        guard !secrets.isEmpty else { throw KeyEncryptionError("no key-encryption key was given") }
        self.keys = try secrets.map { secret in
            guard secret.utf8.count >= Self.minimumSecretLength else {
                throw KeyEncryptionError("a key-encryption key must be at least \(Self.minimumSecretLength) bytes; one has \(secret.utf8.count)")
            }
            // HKDF turns any secret of enough entropy into a uniform AES-256 key (RFC 5869).
            let key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), info: Data("tessera signing-key encryption".utf8), outputByteCount: 32
            )
            let id = key.withUnsafeBytes { Base64URL.encode(Array(SHA256.hash(data: Array("tessera kek id\u{0}".utf8) + Array($0)).prefix(9))) }
            return Key(id: "kek_" + id, key: key)
        }
    }

    /// The newest key's name: what ``seal(_:kid:)`` records.
    public var currentId: String { self.keys[0].id }

    /// Seals a private key; the `kid` is authenticated with it, so that a sealed key moved to another row fails to open.
    public func seal(_ privateKey: [UInt8], kid: String) throws -> (sealed: String, with: String) {
        let box = try AES.GCM.seal(privateKey, using: self.keys[0].key, authenticating: Data(kid.utf8))
        guard let combined = box.combined else { throw KeyEncryptionError("AES-GCM gave no combined form") }
        return (Base64URL.encode(Array(combined)), self.keys[0].id)
    }

    /// Opens a sealed private key; nil when none of the keys given sealed it, or it was tampered with.
    public func open(_ sealed: String, sealedWith: String?, kid: String) -> [UInt8]? {
        guard let combined = Base64URL.decode(Substring(sealed)), let box = try? AES.GCM.SealedBox(combined: combined) else { return nil }
        let candidates = self.keys.filter { $0.id == sealedWith }
        for candidate in candidates {
            if let opened = try? AES.GCM.open(box, using: candidate.key, authenticating: Data(kid.utf8)) { return Array(opened) }
        }
        return nil
    }
}

/// A key-encryption key that cannot be used, with a message that says why.
public struct KeyEncryptionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
