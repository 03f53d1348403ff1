import Foundation
import Logging
import ServiceLifecycle
import TesseraCore

/// Deletes audit rows older than the retention period, at start and then every `interval`.
public struct AuditRetention: Service {
    let store: any AuthStore
    let retention: Duration
    let interval: Duration
    let logger: Logger

    public init(store: any AuthStore, retentionDays: Int, interval: Duration = .seconds(3600), logger: Logger) {
        self.store = store
        self.retention = .seconds(Int64(retentionDays) * 86_400)
        self.interval = interval
        self.logger = logger
    }

    /// Deletes what is past retention now; returns how many rows went.
    @discardableResult
    public func pruneOnce(now: Date = Date()) async throws -> Int {
        let removed = try await self.store.deleteAuditEvents(before: now.addingTimeInterval(-self.retention.timeInterval))
        if removed > 0 { self.logger.info("pruned audit rows past retention", metadata: ["rows": "\(removed)"]) }
        return removed
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await self.pruneOnce()
            } catch {
                self.logger.error("audit retention failed", metadata: ["error.type": "\(type(of: error))"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
        }
    }
}
