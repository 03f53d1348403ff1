import Foundation
import Logging
import ServiceLifecycle
import TesseraCore

/// Keeps a ``RevocationIndex`` up to date with the log: loads it whole at start, then reads rows with
/// `seq > lastApplied` every `interval`, so that a revocation written by another process (the CLI, another
/// instance) is enforced here within a fraction of a second. Each successful read marks the index current; if
/// reads keep failing the index goes stale and checks fail closed. Expired token and session entries are pruned.
public struct RevocationLogFollower: Service {
    let store: any AuthStore
    let index: RevocationIndex
    let interval: Duration
    let pruneEvery: Duration
    let logger: Logger
    static let batchSize = 10_000

    public init(store: any AuthStore, index: RevocationIndex, interval: Duration = .milliseconds(200), pruneEvery: Duration = .seconds(60), logger: Logger) {
        self.store = store
        self.index = index
        self.interval = interval
        self.pruneEvery = pruneEvery
        self.logger = logger
    }

    /// Reads every row past the index's cursor and applies them. Returns how many rows were read.
    @discardableResult
    public func catchUp() async throws -> Int {
        var total = 0
        while true {
            let rows = try await self.store.revocations(after: self.index.lastAppliedSeq, limit: Self.batchSize)
            guard let last = rows.last else { break }
            self.index.applyFromLog(rows, throughSeq: last.seq)
            total += rows.count
            if rows.count < Self.batchSize { break }
        }
        self.index.markSynced()
        return total
    }

    public func run() async throws {
        var sincePrune = ContinuousClock.now
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let read = try await self.catchUp()
                if read > 0 { self.logger.debug("applied revocations", metadata: ["rows": "\(read)", "seq": "\(self.index.lastAppliedSeq)"]) }
                if failing {
                    self.logger.info("revocation log readable again")
                    failing = false
                }
            } catch {
                if !failing { self.logger.error("cannot read the revocation log", metadata: ["error": "\(error)"]) }
                failing = true
            }
            if sincePrune.duration(to: .now) >= self.pruneEvery {
                let dropped = self.index.prune()
                if dropped > 0 { self.logger.debug("pruned expired revocations", metadata: ["entries": "\(dropped)"]) }
                sincePrune = .now
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
        }
    }
}
