import Metrics
import Synchronization

/// Commits many small writes as one: callers that arrive while `lanes` batches are in flight wait together, and the
/// next lane to come free writes all of them (up to `maximumBatch`) in one statement and answers each caller with
/// its own result. A caller that finds a lane free is written at once, alone, so batching adds no wait when the
/// store is idle; under load, one commit (one WAL flush, one plan, one round trip) serves many writes.
///
/// If a batch fails in a way that certainly wrote nothing (`retryAlone`: a refused value, a deadlock's victim), its
/// writes are tried again one by one, so that one caller's bad write never fails another's. Any other failure (an
/// outage, an error found after the commit) is every caller's answer: trying again could write a row twice.
final class CommitBatcher<Item: Sendable, Result: Sendable>: Sendable {
    typealias Write = @Sendable ([Item]) async throws -> [Result]

    private struct Waiting {
        let item: Item
        let answer: CheckedContinuation<Result, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var busyLanes = 0
    }

    private let state = Mutex(State())
    private let lanes: Int
    private let maximumBatch: Int
    private let write: Write
    /// Whether a failed batch certainly wrote nothing, and so may be tried again one write at a time.
    private let retryAlone: @Sendable (any Error) -> Bool
    /// How many writes each batch carried.
    private let batchSizes: Recorder

    /// - Parameter name: what the writes are, the `writes` label of the batch-size metric.
    init(name: String, lanes: Int, maximumBatch: Int, retryAlone: @escaping @Sendable (any Error) -> Bool, write: @escaping Write) {
        precondition(lanes > 0 && maximumBatch > 0)
        self.batchSizes = CommitBatchMetrics.recorder(writes: name)
        self.lanes = lanes
        self.maximumBatch = maximumBatch
        self.retryAlone = retryAlone
        self.write = write
    }

    /// Writes `item` (with others, under load) and returns its result once it is committed.
    func submit(_ item: Item) async throws -> Result {
        try await withCheckedThrowingContinuation { answer in
            let lead = self.state.withLock { state -> Bool in
                state.waiting.append(Waiting(item: item, answer: answer))
                guard state.busyLanes < self.lanes else { return false }
                state.busyLanes += 1
                return true
            }
            // Detached: the batch serves many callers, and carries none of this one's task-local values.
            if lead { Task.detached { await self.drain() } }
        }
    }

    /// Writes batches until no one waits, then frees its lane.
    private func drain() async {
        while let batch = self.state.withLock({ state -> [Waiting]? in
            guard !state.waiting.isEmpty else {
                state.busyLanes -= 1
                return nil
            }
            let count = min(state.waiting.count, self.maximumBatch)
            let batch = Array(state.waiting.prefix(count))
            state.waiting.removeFirst(count)
            return batch
        }) {
            await self.commit(batch)
        }
    }

    private func commit(_ batch: [Waiting]) async {
        self.batchSizes.record(batch.count)
        do {
            let results = try await self.written(batch.map(\.item))
            for (waiting, result) in zip(batch, results) { waiting.answer.resume(returning: result) }
        } catch {
            guard batch.count > 1, self.retryAlone(error) else {
                for waiting in batch { waiting.answer.resume(throwing: error) }
                return
            }
            for waiting in batch {
                do {
                    waiting.answer.resume(returning: try await self.written([waiting.item])[0])
                } catch {
                    waiting.answer.resume(throwing: error)
                }
            }
        }
    }

    /// `write`, held to one result per item.
    private func written(_ items: [Item]) async throws -> [Result] {
        let results = try await self.write(items)
        guard results.count == items.count else {
            throw CorruptRow(description: "a batch of \(items.count) writes returned \(results.count) results")
        }
        return results
    }
}

/// The batch-size histogram of group commits: one for SQLite's transactions, one for PostgreSQL's sign-outs.
enum CommitBatchMetrics {
    static let label = "tessera_commit_batch_size"

    static func recorder(writes: String) -> Recorder {
        Recorder(label: Self.label, dimensions: [("writes", writes)], aggregate: true)
    }
}
