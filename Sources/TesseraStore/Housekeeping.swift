import Foundation
import Logging
import ServiceLifecycle
import TesseraCore

/// Keeps the database from growing with history, at start and then every `interval`:
/// - revocation rows of single tokens and sessions go an hour after the last token they cover expired: the index
///   drops them at that point anyway, and a server that starts later need not read them (start-up time follows the
///   revocations of the last access-token lifetime, not of all time). Subject and global rows are state and stay.
/// With several instances on one PostgreSQL database, one of them does a round at a time (an advisory lock); the
/// others skip it.
/// - sessions go a week after they expired, with their spent refresh tokens. A refresh token of a session that
///   ended more than a week ago is then refused as unknown rather than reported as reuse; within the week, reuse
///   is still detected and audited.
/// - audit rows go after `AUDIT_RETENTION_DAYS`, when that is set.
public struct Housekeeping: Service {
    /// How long after its `until` a token or session revocation row is kept (clock skew between instances).
    public static let revocationGrace: Duration = .seconds(3600)
    /// How long after it expired a session is kept, with its spent refresh tokens.
    public static let sessionGrace: Duration = .seconds(7 * 86_400)

    let store: SQLAuthStore
    let auditRetention: Duration?
    let interval: Duration
    let logger: Logger

    public init(store: SQLAuthStore, auditRetentionDays: Int?, interval: Duration = .seconds(3600), logger: Logger) {
        self.store = store
        self.auditRetention = auditRetentionDays.map { .seconds(Int64($0) * 86_400) }
        self.interval = interval
        self.logger = logger
    }

    /// What one round deleted.
    public struct Pruned: Sendable, Equatable {
        public var expired: ExpiredRowsDeleted
        public var auditEvents: Int
    }

    /// Deletes what is past its time now, unless another instance is doing so (then nil).
    @discardableResult
    public func pruneOnce(now: Date = Date()) async throws -> Pruned? {
        try await self.store.database.exclusively("housekeeping") { try await self.prune(now: now) }
    }

    private func prune(now: Date) async throws -> Pruned {
        let expired = try await self.store.deleteExpiredRows(
            revocationsBefore: now.addingTimeInterval(-Self.revocationGrace.timeInterval),
            sessionsBefore: now.addingTimeInterval(-Self.sessionGrace.timeInterval)
        )
        var auditEvents = 0
        if let retention = self.auditRetention {
            auditEvents = try await self.store.deleteAuditEvents(before: now.addingTimeInterval(-retention.timeInterval))
        }
        if expired != ExpiredRowsDeleted() || auditEvents > 0 {
            self.logger.info(
                "deleted rows past their time",
                metadata: [
                    "revocations": "\(expired.revocations)", "sessions": "\(expired.sessions)",
                    "spentRefreshTokens": "\(expired.spentRefreshTokens)", "auditEvents": "\(auditEvents)",
                ]
            )
        }
        return Pruned(expired: expired, auditEvents: auditEvents)
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await self.pruneOnce()
            } catch {
                self.logger.error("housekeeping failed", metadata: ["error.type": "\(type(of: error))"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
        }
    }
}
