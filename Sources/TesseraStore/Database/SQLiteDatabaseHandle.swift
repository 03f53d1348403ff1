import Foundation
import Logging
import SQLKit
import SQLiteKit
import SQLiteNIO
import Synchronization

/// A SQLite file with one write connection and one read connection. WAL mode lets reads run beside a write;
/// `synchronous=FULL` makes every acknowledged commit survive a crash or power loss.
///
/// Writes are group-committed: transactions that arrive while one is being written wait, then run together in
/// the next `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint, so one that fails rolls back alone and the
/// others still commit. Every caller is answered only after the `COMMIT` (and its fsync) that holds its writes, so
/// durability is unchanged; what changes is that a hundred concurrent sign-outs cost a few fsyncs, not a hundred.
public final class SQLiteDatabaseHandle: SQLDatabaseHandle {
    public let flavor = SQLFlavor.sqlite
    public let path: String
    private let writer: SQLiteConnection
    private let reader: SQLiteConnection
    private let queue = Mutex<(pending: [PendingTransaction], draining: Bool)>(([], false))
    /// At most this many transactions share one commit, so that none waits long behind a large group.
    static let maximumGroupSize = 128

    private init(path: String, writer: SQLiteConnection, reader: SQLiteConnection) {
        self.path = path
        self.writer = writer
        self.reader = reader
    }

    /// Opens (creating if needed) the file and sets it up for durable, concurrent use.
    public static func open(path: String, logger: Logger) async throws -> SQLiteDatabaseHandle {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let writer = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            // Another process may be migrating the same new file; wait for its lock rather than fail.
            _ = try await writer.query("PRAGMA busy_timeout = 10000")
            _ = try await writer.query("PRAGMA journal_mode = WAL")
            _ = try await writer.query("PRAGMA synchronous = FULL")
            _ = try await writer.query("PRAGMA foreign_keys = ON")
            let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            _ = try await reader.query("PRAGMA busy_timeout = 10000")
            _ = try await reader.query("PRAGMA foreign_keys = ON")
            return SQLiteDatabaseHandle(path: path, writer: writer, reader: reader)
        } catch {
            try? await writer.close()
            throw error
        }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await body(self.reader.sql(queryLogLevel: nil))
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let outcome = TransactionOutcome<T>()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = PendingTransaction(
                run: { database in
                    do {
                        try await database.raw("SAVEPOINT tessera_transaction").run()
                    } catch {
                        outcome.set(.failure(error))
                        return
                    }
                    do {
                        let value = try await body(database)
                        try await database.raw("RELEASE tessera_transaction").run()
                        outcome.set(.success(value))
                    } catch {
                        try? await database.raw("ROLLBACK TO tessera_transaction").run()
                        try? await database.raw("RELEASE tessera_transaction").run()
                        outcome.set(.failure(error))
                    }
                },
                finish: { commitError in
                    switch (outcome.get(), commitError) {
                    case (.success?, let commitError?): continuation.resume(throwing: commitError)
                    case (let result?, _): continuation.resume(with: result)
                    case (nil, let commitError): continuation.resume(throwing: commitError ?? CancellationError())
                    }
                }
            )
            let startDraining = self.queue.withLock { state -> Bool in
                state.pending.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if startDraining { Task { await self.drain() } }
        }
    }

    /// Commits groups of waiting transactions until none is left.
    private func drain() async {
        while true {
            let group = self.queue.withLock { state -> [PendingTransaction] in
                let group = Array(state.pending.prefix(Self.maximumGroupSize))
                state.pending.removeFirst(group.count)
                if group.isEmpty { state.draining = false }
                return group
            }
            guard !group.isEmpty else { return }
            let database = self.writer.sql(queryLogLevel: nil)
            do {
                try await database.raw("BEGIN IMMEDIATE").run()
                for job in group { await job.run(database) }
                try await database.raw("COMMIT").run()
                for job in group { job.finish(nil) }
            } catch {
                try? await database.raw("ROLLBACK").run()
                for job in group { job.finish(error) }
            }
        }
    }

    public func close() async {
        try? await self.reader.close()
        try? await self.writer.close()
    }
}

extension SQLiteDatabaseHandle {
    /// Streams the rows of one read straight from SQLiteNIO to `onRow`, on the database's thread, without SQLKit's
    /// per-column decoders: for the one bulk read, the revocation log at start, where those decoders cost seconds.
    func stream(_ sql: String, _ binds: [SQLiteData], _ onRow: @escaping @Sendable (SQLiteRow) -> Void) async throws {
        try await self.reader.query(sql, binds, onRow)
    }
}

/// One caller's transaction waiting for the next group commit.
private struct PendingTransaction: Sendable {
    /// Runs the caller's body inside its own savepoint and keeps its outcome.
    let run: @Sendable (any SQLDatabase) async -> Void
    /// Answers the caller once the group's `COMMIT` succeeded (nil) or failed (its error).
    let finish: @Sendable ((any Error)?) -> Void
}

/// The result of one caller's body, kept until its group commits.
private final class TransactionOutcome<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)

    func set(_ value: Result<T, any Error>) { self.result.withLock { $0 = value } }
    func get() -> Result<T, any Error>? { self.result.withLock { $0 } }
}
