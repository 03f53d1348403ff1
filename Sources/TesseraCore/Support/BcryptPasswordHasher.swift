import HummingbirdBcrypt
import Metrics
import NIOPosix

#if canImport(Glibc)
import Glibc
import TesseraTokens
#endif

/// bcrypt, run on NIO's blocking thread pool so that neither the event loops nor Swift's cooperative pool stall.
public struct BcryptPasswordHasher: PasswordHasher {
    /// The cost outside tests is never below this.
    public static let minimumProductionCost: UInt8 = 10
    /// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
    public static let maximumPasswordBytes = 72

    public let cost: UInt8
    let threadPool: NIOThreadPool
    /// Whether the pool's threads are the hasher's own, and may run at a lower CPU priority than the event loops.
    let yieldsToRequests: Bool
    /// How long each hash waited for a thread: the sign-in storm gauge (`tessera_password_hash_queue_wait_seconds`).
    let queueWait: Timer

    /// - Parameter yieldsToRequests: run hashes at a low CPU priority (nice 15), so that a storm of sign-ins slows
    ///   sign-ins and not token checks; only for a pool of the hasher's own (it changes the threads that run it).
    public init(cost: UInt8 = 12, threadPool: NIOThreadPool = .singleton, yieldsToRequests: Bool = false) {
        self.cost = cost
        self.threadPool = threadPool
        self.yieldsToRequests = yieldsToRequests
        self.queueWait = Timer(label: "tessera_password_hash_queue_wait_seconds")
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        let lower = self.yieldsToRequests
        let queueWait = self.queueWait
        let queued = ContinuousClock.now
        return try await self.threadPool.runIfActive {
            let waited = queued.duration(to: .now).components
            queueWait.recordNanoseconds(waited.seconds * 1_000_000_000 + waited.attoseconds / 1_000_000_000)
            if lower { Self.lowerThisThreadsPriority() }
            return Bcrypt.hash(password, cost: cost)
        }
    }

    public func verify(_ password: String, against hash: String) async throws -> Bool {
        let lower = self.yieldsToRequests
        let queueWait = self.queueWait
        let queued = ContinuousClock.now
        return try await self.threadPool.runIfActive {
            let waited = queued.duration(to: .now).components
            queueWait.recordNanoseconds(waited.seconds * 1_000_000_000 + waited.attoseconds / 1_000_000_000)
            if lower { Self.lowerThisThreadsPriority() }
            return Bcrypt.verify(password, hash: hash)
        }
    }

    /// On Linux a nice value is per thread: `setpriority(PRIO_PROCESS, 0, …)` changes the calling thread only.
    /// Repeating it costs a system call, nothing next to a hash.
    static func lowerThisThreadsPriority() {
        #if canImport(Glibc)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 15)
        #endif
    }
}
