import Synchronization
import TesseraCore

/// What this instance tells followers of the revocation log (guarded services): the rows its own follower has read,
/// kept for a while in batches with the cursor each read ended at, so that a follower's long poll is answered from
/// memory, never from the database.
///
/// A follower's cursor is a position in the log as the database names it (``RevocationLogCursor``), the same on
/// every instance of one database: a follower may move between instances. The rows a cursor has not seen are those
/// of every batch after the newest batch whose end it has seen (``RevocationLogCursor/isWithin(_:)``); some of them
/// may be sent again, which a follower applies harmlessly. A cursor older than what is kept, of another database or
/// unreadable is gone: the follower starts again from a snapshot.
///
/// Rows are published at most every `batchInterval`: under a steady stream of revocations each follower gets at
/// most one answer per interval, however many followers there are.
public final class RevocationFeed: Sendable {
    /// Rows for a follower and the cursor to continue from.
    public struct Changes: Sendable {
        public var entries: [RevocationEntry]
        public var cursor: RevocationLogCursor
        /// When the read that the answer reaches to began: the answer is as old as that.
        public var readAt: ContinuousClock.Instant
    }

    /// What a long poll comes to.
    public enum Outcome: Sendable {
        /// Rows past the cursor (none: a heartbeat).
        case changes(Changes)
        /// The cursor is unknown here: take a snapshot.
        case gone
        /// The feed has not read the log yet.
        case unavailable
    }

    struct Batch {
        var entries: [RevocationEntry]
        var through: RevocationLogCursor
        var publishedAt: ContinuousClock.Instant
    }

    struct State {
        /// Every row after `base` is in `batches`; nil before the first read.
        var base: RevocationLogCursor?
        var batches: [Batch] = []
        var keptRows = 0
        /// The published end: every row before it is in `batches` (or before `base`).
        var latest: RevocationLogCursor?
        /// When the read that ended at `latest` began: what the feed says is current is as old as that.
        var latestReadAt: ContinuousClock.Instant?
        var pendingReadAt: ContinuousClock.Instant?
        /// Rows read but not yet published (the batch interval has not passed), and where that read ended.
        var pending: [RevocationEntry] = []
        var pendingThrough: RevocationLogCursor?
        var publishScheduled = false
        var lastPublished: ContinuousClock.Instant?
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Waits whose time ran out before they began waiting.
        var releasedEarly: Set<UInt64> = []
        /// Waits begun and not yet over.
        var inProgress: Set<UInt64> = []
    }

    private let state = Mutex(State())
    /// The least time between two publications.
    public let batchInterval: Duration
    /// At most this many rows are kept for followers that fall behind…
    public let keptRowLimit: Int
    /// …and for at most this long; an older cursor is gone.
    public let keptFor: Duration

    public init(batchInterval: Duration = .milliseconds(100), keptRowLimit: Int = 100_000, keptFor: Duration = .seconds(600)) {
        self.batchInterval = batchInterval
        self.keptRowLimit = keptRowLimit
        self.keptFor = keptFor
    }

    /// The published end of the log: the cursor of a snapshot taken now.
    public var latest: RevocationLogCursor? {
        self.state.withLock { $0.latest }
    }

    /// The published end and when the read that reached it began, read together.
    public var latestRead: (cursor: RevocationLogCursor, readAt: ContinuousClock.Instant)? {
        self.state.withLock { state in state.latest.flatMap { cursor in state.latestReadAt.map { (cursor, $0) } } }
    }

    /// How old what the feed publishes is: since the read that ended at ``latest`` began. Nil before the first read.
    public func age(at now: ContinuousClock.Instant = .now) -> Duration? {
        self.state.withLock { state in state.latestReadAt.map { $0.duration(to: now) } }
    }

    /// The follower read `entries`, everything committed up to `cursor`, in a read that began at `readAt`.
    public func record(
        _ entries: [RevocationEntry], through cursor: RevocationLogCursor, readAt: ContinuousClock.Instant = .now, at now: ContinuousClock.Instant = .now
    ) {
        let wake = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.base != nil else {
                // The first read is the whole log: every row before it is in a snapshot.
                state.base = cursor
                state.latest = cursor
                state.latestReadAt = readAt
                return []
            }
            if entries.isEmpty && state.pending.isEmpty {
                // Nothing new: the published end moves on, waking nobody.
                state.latest = cursor
                state.latestReadAt = readAt
                return []
            }
            state.pending.append(contentsOf: entries)
            state.pendingThrough = cursor
            state.pendingReadAt = readAt
            if let last = state.lastPublished, last.duration(to: now) < self.batchInterval {
                if !state.publishScheduled {
                    state.publishScheduled = true
                    let delay = self.batchInterval - last.duration(to: now)
                    Task {
                        try? await Task.sleep(for: delay)
                        self.publishPending()
                    }
                }
                return []
            }
            return self.publish(&state, at: now)
        }
        for waiter in wake { waiter.resume() }
    }

    /// The follower read the whole log again (another database: restored, failed over): every cursor handed out
    /// before is gone.
    public func restart(at cursor: RevocationLogCursor, readAt: ContinuousClock.Instant = .now) {
        let wake = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let waiters = state.waiters
            state = State(
                base: cursor, latest: cursor, latestReadAt: readAt, generation: state.generation + 1, nextWaiter: state.nextWaiter,
                inProgress: state.inProgress
            )
            return Array(waiters.values)
        }
        for waiter in wake { waiter.resume() }
    }

    private func publishPending() {
        let wake = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.publishScheduled = false
            return self.publish(&state, at: .now)
        }
        for waiter in wake { waiter.resume() }
    }

    /// Publishes the pending rows as one batch and drops what is kept too long; returns the waiters to wake.
    private func publish(_ state: inout State, at now: ContinuousClock.Instant) -> [CheckedContinuation<Void, Never>] {
        guard let through = state.pendingThrough else { return [] }
        if !state.pending.isEmpty {
            state.batches.append(Batch(entries: state.pending, through: through, publishedAt: now))
            state.keptRows += state.pending.count
        }
        state.latest = through
        state.latestReadAt = state.pendingReadAt
        state.pending = []
        state.pendingThrough = nil
        state.pendingReadAt = nil
        state.lastPublished = now
        state.generation += 1
        while let oldest = state.batches.first,
            state.batches.count > 1 && (state.keptRows > self.keptRowLimit || oldest.publishedAt.duration(to: now) > self.keptFor)
        {
            state.base = oldest.through
            state.keptRows -= oldest.entries.count
            state.batches.removeFirst()
        }
        let waiters = state.waiters
        state.waiters = [:]
        return Array(waiters.values)
    }

    /// The rows past `cursor`, at once when there are some, or when the next batch is published, or after `wait`
    /// with none (a heartbeat).
    public func changes(after cursor: RevocationLogCursor, wait: Duration) async -> Outcome {
        let deadline = ContinuousClock.now + wait
        while true {
            let (outcome, generation) = self.state.withLock { state in (Self.evaluate(cursor, in: state), state.generation) }
            switch outcome {
            case .gone, .unavailable:
                return outcome
            case .changes(let changes) where !changes.entries.isEmpty:
                return outcome
            case .changes:
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero || Task.isCancelled { return outcome }
                await self.waitForPublication(after: generation, upTo: left)
            }
        }
    }

    /// What a cursor has not seen, without waiting.
    static func evaluate(_ cursor: RevocationLogCursor, in state: State) -> Outcome {
        guard let latest = state.latest, let base = state.base, let readAt = state.latestReadAt else { return .unavailable }
        // Where the follower continues: the published end when it has seen no more than that (the usual case), or
        // its own cursor when it comes from an instance that has read further.
        let next = cursor.isWithin(latest) ? latest : cursor
        if latest.isWithin(cursor) {
            // Ahead of this instance: only another instance of a shared database can have handed that out. On a
            // database one instance serves, it is a cursor of the file before it was restored: gone.
            if next != latest, !cursor.isShared { return .gone }
            return .changes(Changes(entries: [], cursor: next, readAt: readAt))
        }
        var first = state.batches.count
        while first > 0, !state.batches[first - 1].through.isWithin(cursor) { first -= 1 }
        if first == 0, !base.isWithin(cursor) { return .gone }
        let entries = state.batches[first...].flatMap(\.entries)
        return .changes(Changes(entries: entries, cursor: next, readAt: readAt))
    }

    /// Returns when a batch is published after `generation`, after `limit`, or when the task is cancelled.
    private func waitForPublication(after generation: UInt64, upTo limit: Duration) async {
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            state.inProgress.insert(state.nextWaiter)
            return state.nextWaiter
        }
        let timer = Task {
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            self.release(id)
        }
        defer {
            timer.cancel()
            self.state.withLock { state in
                state.releasedEarly.remove(id)
                state.inProgress.remove(id)
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.generation != generation || Task.isCancelled || state.releasedEarly.remove(id) != nil { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.release(id)
        }
    }

    private func release(_ id: UInt64) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                if state.inProgress.contains(id) { state.releasedEarly.insert(id) }
                return nil
            }
            return waiter
        }
        waiter?.resume()
    }
}
