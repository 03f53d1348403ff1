import Foundation
import SQLKit
import Synchronization
import Testing
import TesseraStore

/// Group commit: concurrent transactions share a `COMMIT`, but each still succeeds or fails on its own.
@Suite struct SQLiteDatabaseHandleTests {
    struct Refused: Error {}

    @Test func concurrentTransactionsCommitTogetherAndAFailingOneRollsBackAlone() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            do {
                try await handle.transaction { try await $0.raw("CREATE TABLE t (n INTEGER NOT NULL)").run() }
                let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                    for n in 0..<200 {
                        group.addTask {
                            do {
                                try await handle.transaction { db in
                                    try await db.raw("INSERT INTO t (n) VALUES (\(bind: n))").run()
                                    // Every seventh writes, then fails: its row must not survive.
                                    if n % 7 == 0 { throw Refused() }
                                }
                                return (n, true)
                            } catch is Refused {
                                return (n, false)
                            }
                        }
                    }
                    return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
                }
                #expect(outcomes.count == 200)
                #expect(outcomes.filter { !$0.value }.keys.sorted() == Array(stride(from: 0, to: 200, by: 7)))
                let stored = try await handle.read { db in
                    try await db.raw("SELECT n FROM t ORDER BY n").all().map { try $0.decode(column: "n", as: Int.self) }
                }
                #expect(stored == (0..<200).filter { $0 % 7 != 0 })
            } catch {
                await handle.close()
                throw error
            }
            await handle.close()
        }
    }

    /// What a transaction returns is only handed back after its group's `COMMIT`: another connection sees it at once.
    @Test func anAcknowledgedTransactionIsVisibleToAnotherConnection() async throws {
        try await TestDatabase.with { database in
            let writer = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            let other = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            try await writer.transaction { try await $0.raw("CREATE TABLE t (n INTEGER NOT NULL)").run() }
            for n in 0..<20 {
                try await writer.transaction { try await $0.raw("INSERT INTO t (n) VALUES (\(bind: n))").run() }
                let count = try await other.read { try await $0.raw("SELECT COUNT(*) AS c FROM t").first()?.decode(column: "c", as: Int.self) }
                #expect(count == n + 1)
            }
            await other.close()
            await writer.close()
        }
    }
}

/// What the review of the group-commit handle asked to show.
@Suite struct SQLiteDatabaseHandleFaultTests {
    /// A slow read of some request (an admin's search over every account) must never delay the follower: the index
    /// would go stale and every protected request would answer 503. The follower reads on a connection of its own.
    @Test func theFollowersReadsDoNotWaitBehindASlowRequestRead() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in
                let finished = Mutex(false)
                let slow = Task {
                    try await process.store.database.read { db in
                        try await db.raw(
                            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) SELECT count(*) AS n FROM c"
                        ).run()
                    }
                    finished.withLock { $0 = true }
                }
                try await Task.sleep(for: .milliseconds(200))
                _ = try await process.follower.catchUp()
                #expect(!finished.withLock { $0 }, "the follower's read waited for the slow read")
                try await slow.value
            }
        }
    }

    @TaskLocal static var requestId = "none"

    /// A body runs in its caller's own task: task-locals (a request id for tracing) are there, as everywhere else.
    @Test func aBodyRunsInItsCallersTaskWithItsTaskLocals() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            let seen = try await withThrowingTaskGroup(of: (String, String).self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await Self.$requestId.withValue("request-\(index)") {
                            ("request-\(index)", try await handle.transaction { _ in Self.requestId })
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(seen.count == 20)
            #expect(seen.allSatisfy { $0.0 == $0.1 })
            await handle.close()
        }
    }

    /// A transaction opened inside another's body would wait for its own group commit forever; it is refused.
    @Test func aTransactionInsideATransactionIsRefusedNotDeadlocked() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            await #expect(throws: NestedTransactionError.self) {
                try await handle.transaction { _ in try await handle.transaction { _ in } }
            }
            await handle.close()
        }
    }

    /// Closing waits for every acknowledged-to-be transaction already queued: none is cut off by shutdown.
    @Test func closeWaitsForQueuedCommits() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            try await handle.transaction { try await $0.raw("CREATE TABLE t (n INTEGER NOT NULL)").run() }
            let writes = (0..<50).map { n in Task { try await handle.transaction { try await $0.raw("INSERT INTO t (n) VALUES (\(bind: n))").run() } } }
            await handle.close()
            var committed = 0
            for write in writes { if (try? await write.value) != nil { committed += 1 } }
            let reopened = try await SQLiteDatabaseHandle.open(path: database.path, create: false, logger: TestDatabase.logger)
            let count = try await reopened.read { try await $0.raw("SELECT COUNT(*) AS c FROM t").first()?.decode(column: "c", as: Int.self) }
            // Every write that was answered as committed is in the file; those refused after close began wrote nothing.
            #expect(count == committed)
            await reopened.close()
        }
    }
}
