import Foundation
import Synchronization
import TesseraTokens

/// The keys a guard verifies with: Tessera's JWKS, read at start, again when its cache time runs out, and soon after
/// a token names a `kid` it does not hold (at most once a second, however many such tokens arrive).
final class GuardKeys: VerificationKeySource {
    private let keys: Mutex<VerificationKeySet?>
    private let eagerReloads = RateGate(every: .seconds(1))
    /// Set when a token named a `kid` not held; the JWKS loop looks at it every tenth of a second.
    private let reloadRequested = Atomic<Bool>(false)

    init() {
        self.keys = Mutex(nil)
    }

    /// Whether a reload was asked for since the last call (and clears it).
    func takeReloadRequest() -> Bool {
        self.reloadRequested.exchange(false, ordering: .relaxed)
    }

    /// The keys; an empty set of the pinned algorithm before the first fetch (every token is refused unread).
    var verificationKeys: VerificationKeySet {
        self.keys.withLock { $0 } ?? VerificationKeySet(algorithm: .edDSA, keys: [])
    }

    /// Whether the JWKS has been read.
    var isLoaded: Bool { self.keys.withLock { $0 != nil } }

    func reloadSoon() {
        guard self.eagerReloads.admit() else { return }
        self.reloadRequested.store(true, ordering: .relaxed)
    }

    /// Replaces the keys with a JWKS just read. The algorithm is the configured one, or the one the first JWKS
    /// named; it never changes afterwards, so a JWKS cannot switch the guard to another algorithm.
    /// - Returns: the keys kept.
    @discardableResult
    func replace(withJWKS document: JWKS, pinned: SigningAlgorithm?) throws -> VerificationKeySet {
        let parsed = document.keys.compactMap { $0.verificationKey() }
        return try self.keys.withLock { current in
            let algorithm: SigningAlgorithm
            if let fixed = current?.algorithm ?? pinned {
                algorithm = fixed
            } else {
                let named = Set(parsed.map(\.algorithm))
                guard named.count == 1, let only = named.first else { throw GuardError.noAlgorithm(found: named.map(\.rawValue).sorted()) }
                algorithm = only
            }
            let set = VerificationKeySet(algorithm: algorithm, keys: parsed)
            // A JWKS with no usable key (a proxy's error page, a deployment switched to HS256) must not wipe the keys
            // that verify tokens now.
            guard !set.keys.isEmpty else { throw GuardError.noUsableKeys(algorithm: algorithm.rawValue) }
            current = set
            return set
        }
    }
}

/// `GET /.well-known/jwks.json`.
struct JWKS: Decodable {
    struct Key: Decodable {
        var kty: String?
        var crv: String?
        var x: String?
        var y: String?
        var kid: String?
        var alg: String?
        var use: String?

        /// The key, if it is a signing key of an algorithm Tessera signs with and its `kid` is its thumbprint
        /// (Tessera names keys so; anything else did not come from Tessera as it is).
        func verificationKey() -> VerificationKey? {
            guard self.use == nil || self.use == "sig", let kid = self.kid, let x = self.x.flatMap({ Base64URL.decode(Substring($0)) }) else { return nil }
            let key: VerificationKey?
            switch (self.kty, self.crv, self.alg) {
            case ("OKP", "Ed25519", "EdDSA"?), ("OKP", "Ed25519", nil):
                key = try? VerificationKey(.edDSA, publicKey: Array(x))
            case ("EC", "P-256", "ES256"?), ("EC", "P-256", nil):
                guard let y = self.y.flatMap({ Base64URL.decode(Substring($0)) }), x.count == 32, y.count == 32 else { return nil }
                key = try? VerificationKey(.es256, publicKey: Array(x) + Array(y))
            default:
                key = nil
            }
            guard let key, key.kid == kid else { return nil }
            return key
        }
    }

    var keys: [Key]
}
