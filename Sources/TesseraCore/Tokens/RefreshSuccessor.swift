import Crypto
import Foundation
import Synchronization
import TesseraTokens

/// A refresh token's successor, derived from it: HMAC-SHA256 of the token under a key drawn from the database's
/// refresh secret, in the form of an ``OpaqueToken`` (base64url of 32 bytes).
///
/// Derived, not drawn at random, so that a retry of a refresh can be answered with the very successor the first
/// presentation got while the database keeps only hashes. The key is what stops a thief who holds a spent token from
/// computing its successor. It comes from the database, not from `JWT_SECRET`, because every instance on one
/// database must derive the same successor and `JWT_SECRET` need not be the same on all of them (an asymmetric
/// algorithm, a development secret file per working directory, a secret being rotated). It is read once per process,
/// on the first refresh.
public final class RefreshSuccessor: Sendable {
    private let readSecret: @Sendable () async throws -> String
    private let key = Mutex<SymmetricKey?>(nil)

    /// - Parameter readSecret: reads the secret every instance on the database shares (``AuthStore/refreshSuccessorSecret()``).
    public init(readSecret: @escaping @Sendable () async throws -> String) {
        self.readSecret = readSecret
    }

    /// The successor of a refresh token.
    public func successor(of token: String) async throws -> String {
        if let key = self.key.withLock({ $0 }) { return Self.successor(of: token, key: key) }
        let key = Self.key(secret: try await self.readSecret())
        self.key.withLock { $0 = key }
        return Self.successor(of: token, key: key)
    }

    static func key(secret: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), info: Data("tessera refresh successor v1".utf8), outputByteCount: 32
        )
    }

    static func successor(of token: String, key: SymmetricKey) -> String {
        var message = Data("refresh-successor".utf8)
        message.append(contentsOf: token.utf8)
        return Base64URL.encode(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }
}
