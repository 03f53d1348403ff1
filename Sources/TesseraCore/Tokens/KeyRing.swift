import Foundation
import Synchronization
import TesseraTokens

/// The keys an instance signs and verifies access tokens with: the one current key that signs, and every key whose
/// tokens may still be presented. The verifier reads it for a token it has not seen before; the key manager replaces
/// it when a key is published, becomes current, retires or is revoked.
public final class KeyRing: VerificationKeySource {
    public struct Contents: Sendable {
        /// The one algorithm accepted (`JWT_ALGORITHM`): a token whose header names another is refused unread.
        public var algorithm: SigningAlgorithm
        /// The key that signs new tokens.
        public var current: SigningKey
        /// Every key that verifies (the current one included), few: the current, the next, and those retiring.
        public var verifying: [SigningKey]
        /// The key that takes over at `upcomingFrom`: every instance switches at that moment by its own clock,
        /// without waiting to read the keys again.
        public var upcoming: SigningKey?
        public var upcomingFrom: Date?
        /// `verifying` as the verifier reads it, made once.
        public private(set) var verificationKeys: VerificationKeySet

        public init(current: SigningKey, verifying: [SigningKey] = [], upcoming: SigningKey? = nil, from: Date? = nil) {
            self.algorithm = current.algorithm
            self.current = current
            self.verifying = [current] + verifying.filter { $0.kid != current.kid && $0.algorithm == current.algorithm }
            if let upcoming, let from, upcoming.algorithm == current.algorithm {
                self.upcoming = upcoming
                self.upcomingFrom = from
                if !self.verifying.contains(where: { $0.kid == upcoming.kid }) { self.verifying.append(upcoming) }
            }
            self.verificationKeys = VerificationKeySet(algorithm: self.algorithm, keys: self.verifying.map(\.verification))
        }

        /// The key that signs at `now`: the current one, or the upcoming one once its time has come.
        public func signingKey(at now: Date) -> SigningKey {
            if let upcoming, let from = self.upcomingFrom, now >= from, upcoming.canSign { return upcoming }
            return self.current
        }

        /// The verifying key named `kid`.
        public func key(kid: some StringProtocol) -> SigningKey? {
            self.verifying.first { $0.kid == kid }
        }
    }

    private let contents: Mutex<Contents>
    private let reloader = Mutex<(@Sendable () async throws -> Void)?>(nil)
    /// How often ``reloadSoon()`` may start a reload.
    private let eagerReloads = RateGate(every: .seconds(1))

    public init(_ contents: Contents) {
        self.contents = Mutex(contents)
    }

    /// A ring of one key that signs and verifies.
    public convenience init(key: SigningKey) {
        self.init(Contents(current: key))
    }

    /// What the ring holds now.
    public var snapshot: Contents {
        self.contents.withLock { $0 }
    }

    /// The keys that verify now.
    public var verificationKeys: VerificationKeySet {
        self.contents.withLock { $0.verificationKeys }
    }

    /// Sets what ``reload()`` does: read the keys again from where they are kept.
    public func setReloader(_ reload: @escaping @Sendable () async throws -> Void) {
        self.reloader.withLock { $0 = reload }
    }

    /// Reads the keys again now (when the current key turns out to be revoked); nothing for a ring of fixed keys.
    public func reload() async throws {
        if let reload = self.reloader.withLock({ $0 }) { try await reload() }
    }

    /// Starts a reload in the background, at most once a second: for a token naming a `kid` the ring does not hold
    /// (a key another instance has just started signing with), so that the next such token finds it.
    public func reloadSoon() {
        guard self.reloader.withLock({ $0 }) != nil, self.eagerReloads.admit() else { return }
        Task { try? await self.reload() }
    }

    /// Replaces what the ring holds. The algorithm never changes while the service runs.
    public func replace(with contents: Contents) {
        self.contents.withLock { current in
            precondition(contents.algorithm == current.algorithm, "a key ring's algorithm is fixed")
            current = contents
        }
    }
}
