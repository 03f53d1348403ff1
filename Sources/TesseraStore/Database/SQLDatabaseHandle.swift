import SQLKit

/// Which SQL dialect the schema is written in (only SQLite is opened today; PostgreSQL is being built).
public enum SQLFlavor: Sendable {
    case sqlite
    case postgres
}

/// A database as the store uses it: reads, and transactions that run one at a time.
public protocol SQLDatabaseHandle: Sendable {
    var flavor: SQLFlavor { get }
    /// Runs reads that need no transaction.
    func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Runs the body in one transaction; it commits when the body returns and rolls back when it throws. It returns
    /// only once the commit is durable.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// Closes every connection.
    func close() async
}
