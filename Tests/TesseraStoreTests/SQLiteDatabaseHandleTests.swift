import Foundation
import SQLKit
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
