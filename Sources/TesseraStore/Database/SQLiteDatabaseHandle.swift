import Foundation
import Logging
import SQLKit
import SQLiteKit
import SQLiteNIO
import Synchronization
import TesseraCore

/// A SQLite file with one write connection and one read connection. WAL mode lets reads run beside a write;
/// `synchronous=FULL` makes every acknowledged commit survive a crash or power loss.
///
/// Writes are group-committed: transactions that arrive while one is being written wait, then run together in
/// the next `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint, so one that fails rolls back alone and the
/// others still commit. Every caller is answered only after the `COMMIT` (and its fsync) that holds its writes, so
/// durability is unchanged; what changes is that a hundred concurrent sign-outs cost a few fsyncs, not a hundred.
///
/// Faults answer quickly and honestly: a lock held by another process is waited for at most ``busyTimeout``, then
/// the write fails with ``StoreUnavailable`` (503), having written nothing.
public final class SQLiteDatabaseHandle: SQLDatabaseHandle {
    public let flavor = SQLFlavor.sqlite
    public let path: String
    private let writer: SQLiteConnection
    private let reader: SQLiteConnection
    /// The follower's own connection, so that no slow read of a request can make the index stale.
    private let logReader: SQLiteConnection
    private let queue = Mutex<QueueState>(QueueState())
    /// At most this many transactions share one commit, so that none waits long behind a large group.
    static let maximumGroupSize = 128
    /// How long a statement waits for a lock another process holds before the request is answered 503. Long enough
    /// for a checkpoint or another process's short write; well under a client's patience.
    public static let busyTimeoutMilliseconds = 2_000

    private struct QueueState {
        var pending: [PendingTransaction] = []
        var drain: Task<Void, Never>?
        var closing = false
    }

    /// Set while a caller's body runs inside a group commit: a transaction opened there would wait for its own
    /// group forever, so it is refused instead.
    @TaskLocal static var insideTransaction = false

    private init(path: String, writer: SQLiteConnection, reader: SQLiteConnection, logReader: SQLiteConnection) {
        self.path = path
        self.writer = writer
        self.reader = reader
        self.logReader = logReader
    }

    /// Opens the file and sets it up for durable, concurrent use. Only `create: true` (serve, migrate) may make a new
    /// file; every other command refuses a path where there is none, naming it, instead of working on an empty
    /// database that the real server never reads.
    public static func open(path: String, create: Bool = true, logger: Logger) async throws -> SQLiteDatabaseHandle {
        if !create, !FileManager.default.fileExists(atPath: path) {
            throw DatabaseURLError(
                text: path, problem: "there is no database at \(path) (run `tessera migrate` or `tessera serve` to create one, or check --database / DATABASE_URL)"
            )
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if create, !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        var opened: [SQLiteConnection] = []
        do {
            let writer = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            opened.append(writer)
            _ = try await writer.query("PRAGMA busy_timeout = \(Self.busyTimeoutMilliseconds)")
            _ = try await writer.query("PRAGMA journal_mode = WAL")
            _ = try await writer.query("PRAGMA synchronous = FULL")
            _ = try await writer.query("PRAGMA foreign_keys = ON")
            var readers: [SQLiteConnection] = []
            for _ in 0..<2 {
                let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
                opened.append(reader)
                _ = try await reader.query("PRAGMA busy_timeout = 1000")
                _ = try await reader.query("PRAGMA foreign_keys = ON")
                readers.append(reader)
            }
            return SQLiteDatabaseHandle(path: path, writer: writer, reader: readers[0], logReader: readers[1])
        } catch {
            for connection in opened { try? await connection.close() }
            throw Self.translate(error)
        }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        do {
            return try await body(self.reader.sql(queryLogLevel: nil))
        } catch {
            throw Self.translate(error)
        }
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard !Self.insideTransaction else { throw NestedTransactionError() }
        let outcome = TransactionOutcome<T>()
        let cancelled = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                self.enqueue(self.job(body, outcome: outcome, cancelled: cancelled, continuation: continuation))
            }
        } onCancel: {
            cancelled.set()
        }
    }

    private func job<T: Sendable>(
        _ body: @escaping @Sendable (any SQLDatabase) async throws -> T, outcome: TransactionOutcome<T>, cancelled: CancellationFlag,
        continuation: CheckedContinuation<T, any Error>
    ) -> PendingTransaction {
        PendingTransaction(
                cancelled: cancelled,
                run: { database in
                    do {
                        try await database.raw("SAVEPOINT tessera_transaction").run()
                    } catch {
                        outcome.set(.failure(error))
                        return
                    }
                    do {
                        let value = try await Self.$insideTransaction.withValue(true) { try await body(database) }
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
                    case (.success?, let commitError?): continuation.resume(throwing: Self.translate(commitError))
                    case (.failure(let error)?, _): continuation.resume(throwing: Self.translate(error))
                    case (let result?, _): continuation.resume(with: result)
                    case (nil, let commitError): continuation.resume(throwing: commitError.map(Self.translate) ?? CancellationError())
                    }
                }
            )
    }

    private func enqueue(_ job: PendingTransaction) {
        let refused = self.queue.withLock { state -> Bool in
            guard !state.closing else { return true }
            state.pending.append(job)
            if state.drain == nil { state.drain = Task { await self.drain() } }
            return false
        }
        if refused { job.finish(StoreUnavailable("the database is closing")) }
    }

    /// Commits groups of waiting transactions until none is left. A caller cancelled before its group began is
    /// answered with `CancellationError` and writes nothing; one whose group began is committed and answered.
    private func drain() async {
        while true {
            let group = self.queue.withLock { state -> [PendingTransaction] in
                let group = Array(state.pending.prefix(Self.maximumGroupSize))
                state.pending.removeFirst(group.count)
                if group.isEmpty { state.drain = nil }
                return group
            }
            guard !group.isEmpty else { return }
            let live = group.filter { job in
                guard job.cancelled.isSet else { return true }
                job.finish(CancellationError())
                return false
            }
            guard !live.isEmpty else { continue }
            let database = self.writer.sql(queryLogLevel: nil)
            do {
                try await database.raw("BEGIN IMMEDIATE").run()
                for job in live { await job.run(database) }
                try await database.raw("COMMIT").run()
                for job in live { job.finish(nil) }
            } catch {
                try? await database.raw("ROLLBACK").run()
                for job in live { job.finish(error) }
            }
        }
    }

    /// Refuses new transactions, waits until every one already queued has committed and been answered, then
    /// closes the connections.
    public func close() async {
        let drain = self.queue.withLock { state -> Task<Void, Never>? in
            state.closing = true
            return state.drain
        }
        await drain?.value
        try? await self.logReader.close()
        try? await self.reader.close()
        try? await self.writer.close()
    }

    /// SQLite's "cannot now" errors (locked, busy, I/O, full, cannot open) become ``StoreUnavailable``; others stay.
    static func translate(_ error: any Error) -> any Error {
        guard let error = error as? SQLiteError else { return error }
        switch error.reason {
        case .busy, .locked, .busyInRecovery, .busyInSnapshot, .busyTimeout, .lockedBySharedCache, .lockedVirtualTable, .ioError, .full,
            .cantOpen, .readOnly, .readonlyCantLock, .readonlyInRecovery, .readonlyDirectory, .readonlyBackingMoved, .readonlyInRollback,
            .ioErrorFailedRead, .ioErrorFailedWrite, .ioErrorFailedSync, .cantOpenDirectory, .notADatabase:
            return StoreUnavailable("\(error.reason)")
        default:
            return error
        }
    }
}

/// A transaction opened inside another's body, which would wait for its own group commit forever.
public struct NestedTransactionError: Error, CustomStringConvertible {
    public var description: String { "a transaction was opened inside another transaction's body; pass the open database down instead" }
}

/// Whether a caller waiting for its group commit was cancelled.
private final class CancellationFlag: Sendable {
    private let value = Mutex(false)
    func set() { self.value.withLock { $0 = true } }
    var isSet: Bool { self.value.withLock { $0 } }
}

extension SQLiteDatabaseHandle {
    /// Streams the rows of one read straight from SQLiteNIO to `onRow`, on the database's thread, without SQLKit's
    /// per-column decoders: for the one bulk read, the revocation log at start, where those decoders cost seconds.
    /// It runs on the follower's own connection, so that a slow read of some request never delays the follower.
    func stream(_ sql: String, _ binds: [SQLiteData], _ onRow: @escaping @Sendable (SQLiteRow) -> Void) async throws {
        do {
            try await self.logReader.query(sql, binds, onRow)
        } catch {
            throw Self.translate(error)
        }
    }
}

/// One caller's transaction waiting for the next group commit.
private struct PendingTransaction: Sendable {
    let cancelled: CancellationFlag
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
