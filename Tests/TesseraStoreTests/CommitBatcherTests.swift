import Synchronization
import Testing

@testable import TesseraStore

/// `CommitBatcher` with a write that the test holds and releases, so that which writes share a batch is decided
/// by the test, not by timing.
@Suite struct CommitBatcherTests {
    /// A write the test controls: each call is recorded and waits until the test opens the gate.
    final class HeldWrite: Sendable {
        let calls = Mutex<[[Int]]>([])
        private let gate = Mutex<[CheckedContinuation<Void, Never>]>([])
        private let open = Mutex(false)
        /// Items whose batch fails as a whole, as a statement with one bad value does.
        let poisoned: Set<Int>

        init(poisoned: Set<Int> = []) { self.poisoned = poisoned }

        func write(_ items: [Int]) async throws -> [Int] {
            self.calls.withLock { $0.append(items) }
            await withCheckedContinuation { continuation in
                let wait = self.open.withLock { open -> Bool in
                    if open { return false }
                    self.gate.withLock { $0.append(continuation) }
                    return true
                }
                if !wait { continuation.resume() }
            }
            if !self.poisoned.isDisjoint(with: items) { throw Refused() }
            return items.map { $0 * 10 }
        }

        func release() {
            let waiting = self.open.withLock { open -> [CheckedContinuation<Void, Never>] in
                open = true
                return self.gate.withLock { gate in
                    defer { gate = [] }
                    return gate
                }
            }
            for continuation in waiting { continuation.resume() }
        }

        var callCount: Int { self.calls.withLock { $0.count } }
    }

    struct Refused: Error {}
    struct Outage: Error {}

    /// Waits (briefly, by polling) until `condition` holds.
    static func eventually(_ condition: () -> Bool) async throws {
        for _ in 0..<2000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
        #expect(condition())
    }

    @Test func callersThatArriveWhileEveryLaneIsBusyShareOneWriteAndEachGetsItsOwnResult() async throws {
        let held = HeldWrite()
        let batcher = CommitBatcher<Int, Int>(name: "test", lanes: 2, maximumBatch: 100, retryAlone: { $0 is Refused }) { try await held.write($0) }
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            // Two callers, one after the other, take the two lanes, each written alone at once.
            for item in 0..<2 {
                group.addTask { (item, try await batcher.submit(item)) }
                try await Self.eventually { held.callCount == item + 1 }
            }
            // Every lane is busy: these wait, and are written together when a lane comes free.
            for item in 2..<40 { group.addTask { (item, try await batcher.submit(item)) } }
            try await Task.sleep(for: .milliseconds(50))
            #expect(held.callCount == 2, "no third write while both lanes are busy")
            held.release()
            var results: [Int: Int] = [:]
            for try await (item, result) in group { results[item] = result }
            #expect(results.count == 40)
            for (item, result) in results { #expect(result == item * 10, "each caller gets its own result") }
        }
        let calls = held.calls.withLock { $0 }
        #expect(calls.count < 40, "the waiting callers were batched: \(calls.count) writes")
        #expect(calls.flatMap { $0 }.sorted() == Array(0..<40), "each item written exactly once")
    }

    @Test func aBatchThatWroteNothingIsTriedAgainOneByOneSoThatOnlyTheBadWriteFails() async throws {
        let held = HeldWrite(poisoned: [7])
        let batcher = CommitBatcher<Int, Int>(name: "test", lanes: 1, maximumBatch: 100, retryAlone: { $0 is Refused }) { try await held.write($0) }
        try await withThrowingTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            group.addTask { (0, await outcome { try await batcher.submit(0) }) }
            try await Self.eventually { held.callCount == 1 }
            for item in 1..<12 { group.addTask { (item, await outcome { try await batcher.submit(item) }) } }
            try await Task.sleep(for: .milliseconds(50))
            held.release()
            for try await (item, result) in group {
                switch result {
                case .success(let value): #expect(item != 7 && value == item * 10)
                case .failure(let error): #expect(item == 7 && error is Refused, "only the bad write fails")
                }
            }
        }
        let calls = held.calls.withLock { $0 }
        #expect(calls.contains { $0.count > 1 && $0.contains(7) }, "the bad write was in a batch")
        #expect(calls.contains([7]), "and was then tried alone")
    }

    @Test func aFailureThatMayHaveWrittenIsEveryCallersAnswerAndNothingIsWrittenTwice() async throws {
        let calls = Mutex<[[Int]]>([])
        let first = Mutex(true)
        let gate = HeldWrite()
        let batcher = CommitBatcher<Int, Int>(name: "test", lanes: 1, maximumBatch: 100, retryAlone: { $0 is Refused }) { items in
            calls.withLock { $0.append(items) }
            if first.withLock({ value in defer { value = false }; return value }) {
                _ = try await gate.write([])
                return items
            }
            throw Outage()
        }
        try await withThrowingTaskGroup(of: Result<Int, any Error>.self) { group in
            group.addTask { await outcome { try await batcher.submit(0) } }
            try await Self.eventually { calls.withLock { $0.count } == 1 }
            for item in 1..<6 { group.addTask { await outcome { try await batcher.submit(item) } } }
            try await Task.sleep(for: .milliseconds(50))
            gate.release()
            var failures = 0
            for try await result in group { if case .failure(let error) = result, error is Outage { failures += 1 } }
            #expect(failures == 5)
        }
        // The waiting callers arrive in any order (a task group); what matters is that the failed batch was
        // written once and not again, alone or together.
        let written = calls.withLock { $0 }
        #expect(written.count == 2 && written.first == [0] && written.last?.sorted() == [1, 2, 3, 4, 5], "the failed batch was not tried again: \(written)")
    }
}
