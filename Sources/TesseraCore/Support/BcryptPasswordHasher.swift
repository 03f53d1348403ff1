import HummingbirdBcrypt
import NIOPosix

/// bcrypt, run on NIO's blocking thread pool so that neither the event loops nor Swift's cooperative pool stall.
public struct BcryptPasswordHasher: PasswordHasher {
    /// The cost outside tests is never below this.
    public static let minimumProductionCost: UInt8 = 10
    /// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
    public static let maximumPasswordBytes = 72

    public let cost: UInt8
    let threadPool: NIOThreadPool

    public init(cost: UInt8 = 12, threadPool: NIOThreadPool = .singleton) {
        self.cost = cost
        self.threadPool = threadPool
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await self.threadPool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, against hash: String) async throws -> Bool {
        try await self.threadPool.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
