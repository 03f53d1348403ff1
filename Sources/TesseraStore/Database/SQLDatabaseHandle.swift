import SQLKit
import TesseraCore

/// Which SQL dialect the schema is written in.
public enum SQLFlavor: Sendable {
    case sqlite
    case postgres
}

/// A database as the store uses it: reads, transactions, and what differs between SQLite and PostgreSQL.
///
/// Everything the store does goes through this protocol; no code looks behind it at a concrete handle. What one
/// dialect needs and the other does not (row locks, following the log completely, cross-process locks, wake-ups)
/// is a requirement here with an implementation in each handle.
public protocol SQLDatabaseHandle: Sendable {
    var flavor: SQLFlavor { get }
    /// Runs reads that need no transaction.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Runs the body in one transaction; it commits when the body returns and rolls back when it throws. It returns
    /// only once the commit is durable. Errors the body throws come out as thrown, not wrapped.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Runs one statement that is a transaction by itself (PostgreSQL: no `BEGIN`/`COMMIT` round trips around it;
    /// SQLite: a group-committed transaction as usual). It returns once the commit is durable.
    func statement<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Closes every connection.
    func close() async

    /// Appended to a `SELECT` that reads a row the transaction will change, so that concurrent writers of that row
    /// take turns (` FOR UPDATE [OF alias]` on PostgreSQL; empty on SQLite, whose write transactions hold the
    /// whole file). With a join, `alias` names the one table whose rows are locked.
    func rowLock(of alias: String?) -> String
    /// Reads every log row committed since `cursor` (see ``AuthStore/readRevocationLog(after:pageSize:onPage:)``).
    func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor
    /// Called first in every migration transaction: makes it the only one running against this database.
    func lockForMigration(on db: any SQLDatabase) async throws
    /// Runs `body` unless another process is running the job of that name now (then returns nil without running).
    func exclusively<T: Sendable>(_ job: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T?
    /// After rows were inserted with explicit values in an auto-numbered column (a copy), makes the next number
    /// follow the highest one (PostgreSQL's identity sequence; SQLite's AUTOINCREMENT does so by itself).
    func continueNumbering(_ table: String, column: String, on db: any SQLDatabase) async throws
    /// Tells other processes that the log has grown; called after the commit, never inside the transaction.
    func announceRevocations()
    /// Calls `wake` whenever another process announces revocations, until cancelled; returns at once when the
    /// database cannot announce (SQLite: the follower's poll is all there is).
    func watchRevocations(wake: @escaping @Sendable () -> Void) async
}

extension SQLDatabaseHandle {
    /// ``rowLock(of:)`` for a `SELECT` from one table.
    public var rowLock: String { self.rowLock(of: nil) }
}

/// What kind of work the current task does with the database, for the bounds a handle puts on one operation.
public enum DatabaseWork {
    /// Set around work that is long by nature (migrations, copying a database): a request's bound would cut it off.
    @TaskLocal public static var isLong = false
}
