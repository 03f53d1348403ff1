import Foundation
import Logging
import Metrics
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
    /// How many transactions each group commit wrote (made when the handle opens, after the metrics backend is chosen).
    private let groupSizes = CommitBatchMetrics.recorder(writes: "transactions")
    /// This file's name in cursors, once read.
    private let identity = Mutex<String?>(nil)
    /// A random name for this opening of the file.
    private let openedAs = String(UUID().uuidString.prefix(8)).lowercased()
    /// The follower's doorbell, rung after this process commits revocations.
    private let localWake = Mutex<(@Sendable () -> Void)?>(nil)
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
            throw DatabaseMissing(path: path)
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

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        do {
            return try await body(self.reader.sql(queryLogLevel: nil))
        } catch {
            throw Self.translate(error)
        }
    }

    /// Runs the body in the caller's own task (its task-locals and its cancellation apply), on the write connection,
    /// when its group's turn comes: the committing task hands the connection over inside `BEGIN IMMEDIATE`, waits for
    /// the body, and answers every caller of the group after the `COMMIT`.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard !Self.insideTransaction else { throw NestedTransactionError() }
        let job = PendingTransaction()
        let admission = try await withTaskCancellationHandler {
            guard self.enqueue(job) else { throw StoreUnavailable("the database is closing") }
            return await job.turn.receive()
        } onCancel: {
            job.cancelled.set()
        }
        let database: any SQLDatabase
        switch admission {
        case .run(let connection): database = connection
        case .skipped: throw CancellationError()  // cancelled before its group began: nothing was written
        case .failed(let outcome): throw Self.translate(outcome.error)  // the group could not begin: nothing was written
        }
        var result: Result<T, any Error>
        do {
            try await database.raw("SAVEPOINT tessera_transaction").run()
            do {
                let value = try await Self.$insideTransaction.withValue(true) { try await body(database) }
                try await database.raw("RELEASE tessera_transaction").run()
                result = .success(value)
            } catch {
                try? await database.raw("ROLLBACK TO tessera_transaction").run()
                try? await database.raw("RELEASE tessera_transaction").run()
                result = .failure(error)
            }
        } catch {
            result = .failure(error)
        }
        job.bodyDone.send(())
        let commitError = await job.committed.receive()
        if case .success = result, let commitError { throw Self.translate(commitError.error) }
        return try result.mapError { Self.translate($0) }.get()
    }

    /// Queues a transaction and starts the committing task when none runs; false once closing began.
    private func enqueue(_ job: PendingTransaction) -> Bool {
        self.queue.withLock { state -> Bool in
            guard !state.closing else { return false }
            state.pending.append(job)
            if state.drain == nil { state.drain = Task { await self.drain() } }
            return true
        }
    }

    /// Commits groups of waiting transactions until none is left: `BEGIN IMMEDIATE`, each caller's body in turn (in
    /// the caller's task), `COMMIT`, then every caller is answered. A caller cancelled before its group began is
    /// skipped and writes nothing; one whose body ran is answered with the group's outcome.
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
                job.turn.send(.skipped)
                return false
            }
            guard !live.isEmpty else { continue }
            self.groupSizes.record(live.count)
            let database = self.writer.sql(queryLogLevel: nil)
            do {
                try await database.raw("BEGIN IMMEDIATE").run()
            } catch {
                // The write lock could not be had (another process holds it): no body runs, every caller is told.
                for job in live { job.turn.send(.failed(CommitOutcome(error: error))) }
                continue
            }
            for job in live {
                job.turn.send(.run(database))
                await job.bodyDone.receive()
            }
            var outcome: CommitOutcome?
            do {
                try await database.raw("COMMIT").run()
            } catch {
                try? await database.raw("ROLLBACK").run()
                outcome = CommitOutcome(error: error)
            }
            for job in live { job.committed.send(outcome) }
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

/// A command other than `serve` and `migrate` pointed at a database file that does not exist.
public struct DatabaseMissing: Error, CustomStringConvertible {
    public var path: String
    public var description: String {
        "there is no database at \(self.path) (check --database or DATABASE_URL; `tessera migrate` or `tessera serve` creates one)"
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
    public func rowLock(of alias: String?) -> String { "" }

    /// One writer at a time (the file's write lock), so `seq` order is commit order and the cursor is the last `seq`.
    public func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor {
        let cluster = try await self.cluster()
        var last: Int64 = 0
        if let cursor {
            guard cursor.cluster == cluster, let seq = Int64(cursor.position) else {
                throw RevocationLogCursorInvalid(expectedCluster: cursor.cluster, foundCluster: cluster)
            }
            last = seq
        }
        while true {
            let rows = try await SQLAuthStore.revocations(after: last, limit: pageSize, on: self)
            if !rows.isEmpty {
                try onPage(rows)
                last = rows[rows.count - 1].seq
            }
            if rows.count < pageSize { return RevocationLogCursor(cluster: cluster, position: String(last)) }
        }
    }

    /// What a SQLite cursor belongs to: `sqlite.`, this file's random name (``Migrations/databaseIdentity``) and a
    /// name for this opening of it. A file restored from a backup keeps its name but numbers rows again from where
    /// the backup ends, and only a restart can put it in place: so a cursor handed out before this process opened the
    /// file is refused (its followers take a snapshot), as PostgreSQL's are after a restart.
    func cluster() async throws -> String {
        if let known = self.identity.withLock({ $0 }) { return known }
        let token = try await self.read { db in
            try await db.raw("SELECT token FROM database_identity WHERE id = 1").first()?.decode(column: "token", as: String.self)
        }
        let cluster = "sqlite." + (token ?? "unnamed") + "." + self.openedAs
        self.identity.withLock { $0 = cluster }
        return cluster
    }

    /// `BEGIN IMMEDIATE` already makes a migration the only writer.
    public func lockForMigration(on db: any SQLDatabase) async throws {}

    /// One file, one machine: there is no other instance whose job could overlap in a way that matters.
    public func exclusively<T: Sendable>(_ job: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await body()
    }

    public func statement<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await self.transaction(body)
    }

    /// AUTOINCREMENT already continues after the highest explicit value inserted.
    public func continueNumbering(_ table: String, column: String, on db: any SQLDatabase) async throws {}

    /// Wakes this process's follower, so that the revocation feed carries a local write at once; other processes on
    /// the file poll.
    public func announceRevocations() {
        self.localWake.withLock { $0 }?()
    }

    public func watchRevocations(wake: @escaping @Sendable () -> Void) async {
        self.localWake.withLock { $0 = wake }
    }

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

/// One caller's transaction waiting for the next group commit: three hand-overs between the caller and the
/// committing task.
private final class PendingTransaction: Sendable {
    let cancelled = CancellationFlag()
    /// The committing task lends the connection (inside `BEGIN IMMEDIATE`), or says why the body will not run.
    let turn = OneShot<Admission>()
    /// The caller's body has run (in its savepoint), successfully or not.
    let bodyDone = OneShot<Void>()
    /// The group's `COMMIT` succeeded (nil) or failed.
    let committed = OneShot<CommitOutcome?>()
}

/// What the committing task tells a waiting caller.
private enum Admission: @unchecked Sendable {
    /// Run the body on this connection, now.
    case run(any SQLDatabase)
    /// The caller was cancelled before its group began.
    case skipped
    /// The group could not begin (the write lock could not be had).
    case failed(CommitOutcome)
}

/// A failed group commit or begin.
private struct CommitOutcome: @unchecked Sendable {
    let error: any Error
}

/// A value handed from one task to another once; whichever side comes first waits for the other.
private final class OneShot<Value: Sendable>: Sendable {
    private enum Slot {
        case empty
        case waiting(CheckedContinuation<Value, Never>)
        case sent(Value)
    }

    private let slot = Mutex<Slot>(.empty)

    func send(_ value: Value) {
        let waiter = self.slot.withLock { slot -> CheckedContinuation<Value, Never>? in
            switch slot {
            case .empty:
                slot = .sent(value)
                return nil
            case .waiting(let continuation):
                slot = .sent(value)
                return continuation
            case .sent:
                return nil
            }
        }
        waiter?.resume(returning: value)
    }

    func receive() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = self.slot.withLock { slot -> Value? in
                switch slot {
                case .sent(let value): return value
                case .empty:
                    slot = .waiting(continuation)
                    return nil
                case .waiting: preconditionFailure("one receiver only")
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
