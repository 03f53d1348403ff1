import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TesseraCore

/// Keeps a ``RevocationIndex`` up to date with the log: loads it whole at start, then reads what was committed
/// since its cursor whenever the database announces new rows (PostgreSQL `LISTEN`) and at least every `interval`
/// (the safety net, and the heartbeat that keeps the index current), so that a revocation written by another
/// process — the CLI, another instance — is enforced here at once. Each successful read marks the index current; if
/// reads keep failing the index goes stale and checks fail closed. A cursor the database no longer recognises (a
/// restored or failed-over cluster) makes it read the whole log and replace the index. Expired entries are pruned.
public struct RevocationLogFollower: Service {
    let store: any AuthStore
    let index: RevocationIndex
    let interval: Duration
    let pruneEvery: Duration
    let logger: Logger
    /// What followers of this instance are told (guarded services), fed by every read.
    public let feed: RevocationFeed
    private let position: Position
    private let metrics = FollowerMetrics()
    static let batchSize = 10_000
    /// The least time between two reads started by the doorbell.
    static let minimumSpacing: Duration = .milliseconds(10)

    /// Where the follower stands, shared by its copies (the server's and its service's).
    final class Position: Sendable {
        let cursor = Mutex<RevocationLogCursor?>(nil)
        let doorbell = Doorbell()
    }

    public init(
        store: any AuthStore, index: RevocationIndex, interval: Duration = .milliseconds(200), pruneEvery: Duration = .seconds(60),
        feed: RevocationFeed = RevocationFeed(), logger: Logger
    ) {
        self.feed = feed
        self.store = store
        self.index = index
        self.interval = interval
        self.pruneEvery = pruneEvery
        self.logger = logger
        self.position = Position()
    }

    /// The cursor the next read continues from (nil before the first).
    public var cursor: RevocationLogCursor? { self.position.cursor.withLock { $0 } }

    /// Reads every row committed since the cursor and applies them. Returns how many rows were read.
    @discardableResult
    public func catchUp() async throws -> Int {
        let cursor = self.cursor
        // What a read finds was current when it began: freshness counts from then, not from when it ended.
        let started = ContinuousClock.now
        do {
            let read = try await self.read(after: cursor, startedAt: started)
            self.index.markSynced(at: started)
            return read
        } catch let invalid as RevocationLogCursorInvalid {
            self.logger.warning(
                "the database is not the one the index was read from (restored or failed over): reading the whole revocation log again",
                metadata: ["was": "\(invalid.expectedCluster)", "now": "\(invalid.foundCluster)"]
            )
            let reloadStarted = ContinuousClock.now
            self.metrics.reloads.increment()
            let read = try await self.reload(startedAt: reloadStarted)
            self.index.markSynced(at: reloadStarted)
            // Revocations this instance applied while the whole log was being read are in the database but not in
            // the snapshot the reload read: read past it at once rather than at the next tick.
            self.wake()
            return read
        }
    }

    private func read(after cursor: RevocationLogCursor?, startedAt: ContinuousClock.Instant) async throws -> Int {
        let read = Mutex<(count: Int, entries: [RevocationEntry])>((0, []))
        let index = self.index
        let metrics = self.metrics
        // The whole log (at start) is not kept for the feed: a follower takes a snapshot of the index instead.
        let keep = cursor != nil
        let next = try await self.store.readRevocationLog(after: cursor, pageSize: Self.batchSize) { page in
            index.applyFromLog(page, throughSeq: page.map(\.seq).max() ?? 0)
            if keep { metrics.recordLag(of: page) }
            read.withLock {
                $0.count += page.count
                if keep { $0.entries.append(contentsOf: page) }
            }
        }
        self.position.cursor.withLock { $0 = next }
        let (count, entries) = read.withLock { $0 }
        if cursor == nil { self.feed.restart(at: next, readAt: startedAt) } else { self.feed.record(entries, through: next, readAt: startedAt) }
        return count
    }

    /// Reads the whole log into a new table and swaps it in: nothing the old database said is kept.
    private func reload(startedAt: ContinuousClock.Instant) async throws -> Int {
        let collected = Mutex<[RevocationEntry]>([])
        let next = try await self.store.readRevocationLog(after: nil, pageSize: Self.batchSize) { page in
            collected.withLock { $0.append(contentsOf: page) }
        }
        let entries = collected.withLock { $0 }
        self.index.replace(with: entries)
        self.position.cursor.withLock { $0 = next }
        self.feed.restart(at: next, readAt: startedAt)
        return entries.count
    }

    /// Asks for a read now instead of at the next tick.
    public func wake() {
        self.position.doorbell.ring()
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.store.watchRevocations { self.wake() }
            }
            group.addTask {
                await self.follow()
            }
            // Following ends at shutdown; listening ends with it.
            await group.next()
            if !Task.isCancelled, !Task.isShuttingDownGracefully { await group.next() }
            group.cancelAll()
        }
    }

    private func follow() async {
        var sincePrune = ContinuousClock.now
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let read = try await self.catchUp()
                self.metrics.reads.increment()
                if read > 0 { self.logger.debug("applied revocations", metadata: ["rows": "\(read)", "seq": "\(self.index.lastAppliedSeq)"]) }
                if failing {
                    self.logger.info("revocation log readable again")
                    failing = false
                }
            } catch {
                self.metrics.failedReads.increment()
                if !failing { self.logger.error("cannot read the revocation log", metadata: ["error": "\(error)"]) }
                failing = true
            }
            if sincePrune.duration(to: .now) >= self.pruneEvery {
                let dropped = self.index.prune()
                if dropped > 0 { self.logger.debug("pruned expired revocations", metadata: ["entries": "\(dropped)"]) }
                sincePrune = .now
            }
            do {
                let readStarted = ContinuousClock.now
                try await cancelWhenGracefulShutdown { try await self.position.doorbell.wait(upTo: self.interval) }
                // Rung by every commit of this instance (so that the feed carries it at once): under a stream of
                // writes, at most one read per spacing.
                let since = readStarted.duration(to: .now)
                if since < Self.minimumSpacing { try await Task.sleep(for: Self.minimumSpacing - since) }
            } catch {
                return
            }
        }
    }
}

/// What the follower counts: reads of the log, and how long rows took from their commit to this instance's index.
struct FollowerMetrics: Sendable {
    let reads = Counter(label: "tessera_revocation_log_reads_total", dimensions: [("outcome", "ok")])
    let failedReads = Counter(label: "tessera_revocation_log_reads_total", dimensions: [("outcome", "failed")])
    let reloads = Counter(label: "tessera_revocation_index_reloads_total")
    /// The wall-clock time from a row's `revokedAt` (the writer's clock) to its arrival here: the lag behind the log
    /// as far as the clocks of two machines allow; rows of this instance arrive here before they are read back.
    let lag = Timer(label: "tessera_revocation_follower_lag_seconds")

    func recordLag(of rows: [RevocationEntry]) {
        guard !rows.isEmpty else { return }
        let now = Date()
        for row in rows {
            self.lag.recordNanoseconds(Int64(max(0, now.timeIntervalSince(row.revokedAt)) * 1_000_000_000))
        }
    }
}

/// A wake-up that is not lost: a ring while nobody waits is kept for the next wait; many rings make one wake-up.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextId: UInt64 = 0
        /// The latest wait whose time ran out (or was cancelled), perhaps before it began waiting.
        var released: UInt64 = 0
    }

    private let state = Mutex(State())

    func ring() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Returns when rung (or already rung since the last wait), after `limit`, or when the task is cancelled.
    func wait(upTo limit: Duration) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            self.release(id)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.rung || state.released >= id || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = (id, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.release(id)
        }
        try Task.checkCancellation()
    }

    /// Wakes the waiter of this wait, if it still waits.
    private func release(_ id: UInt64) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.released = max(state.released, id)
            guard let waiter = state.waiter, waiter.id == id else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }
}
