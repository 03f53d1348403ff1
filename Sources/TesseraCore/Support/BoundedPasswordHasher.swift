import Synchronization
import TesseraTokens

/// A password hasher with a bounded queue: at most `capacity` hashes in flight (running or waiting); one more is
/// refused at once with ``AuthError/busy(retryAfterSeconds:)`` instead of joining a queue whose wait would outlast
/// the client's patience.
///
/// After a revoke-all of a large user base a storm of sign-ins is certain. Unbounded, a hundred concurrent
/// sign-ins at cost 12 waited 11 s each; a thousand time out and retry into a longer queue. The capacity follows
/// from the cost and the cores: the threads that hash, times how many hashes each does within ``targetWait``.
public struct BoundedPasswordHasher: PasswordHasher {
    let base: any PasswordHasher
    /// Hashing threads, when the capacity is to be calibrated from the first hash; nil when it was given.
    let threads: Int?
    private let counter: Counter

    /// How long a sign-in should wait for its hash at most, queue included.
    public static let targetWait: Duration = .seconds(1)

    private final class Counter: Sendable {
        let value = Mutex(0)
        let capacity: Mutex<Int>
        let calibrated: Mutex<Bool>

        init(capacity: Int, calibrated: Bool) {
            self.capacity = Mutex(max(1, capacity))
            self.calibrated = Mutex(calibrated)
        }
    }

    /// A fixed capacity.
    public init(base: any PasswordHasher, capacity: Int) {
        self.base = base
        self.threads = nil
        self.counter = Counter(capacity: capacity, calibrated: true)
    }

    /// A capacity calibrated from the first hash made (the decoy hash at start), so that finding the cost of a hash
    /// costs no hash of its own; until then, one hash per thread.
    public init(base: any PasswordHasher, threads: Int) {
        self.base = base
        self.threads = max(1, threads)
        self.counter = Counter(capacity: max(1, threads), calibrated: false)
    }

    /// The most hashes running or waiting at once.
    public var capacity: Int { self.counter.capacity.withLock { $0 } }

    /// The capacity for `threads` hashing threads when one hash takes `hashDuration`.
    public static func capacity(threads: Int, hashDuration: Duration) -> Int {
        let perThread = max(1, Int(Self.targetWait / max(hashDuration, .milliseconds(1))))
        return max(threads, threads * perThread)
    }

    /// Hashes running or waiting now.
    public var load: Int { self.counter.value.withLock { $0 } }

    public func hash(_ password: String) async throws -> String {
        try self.enter()
        defer { self.leave() }
        let started = ContinuousClock.now
        let hash = try await self.base.hash(password)
        if let threads, self.counter.calibrated.withLock({ done in defer { done = true }; return !done }) {
            let capacity = Self.capacity(threads: threads, hashDuration: started.duration(to: .now))
            self.counter.capacity.withLock { $0 = capacity }
        }
        return hash
    }

    public func verify(_ password: String, against hash: String) async throws -> Bool {
        try self.enter()
        defer { self.leave() }
        return try await self.base.verify(password, against: hash)
    }

    private func enter() throws(AuthError) {
        let admitted = self.counter.value.withLock { count -> Bool in
            guard count < self.counter.capacity.withLock({ $0 }) else { return false }
            count += 1
            return true
        }
        guard admitted else { throw .busy(retryAfterSeconds: 1) }
    }

    private func leave() {
        self.counter.value.withLock { $0 -= 1 }
    }
}
