import Foundation
import Logging
import SQLKit
import SQLiteKit
import SQLiteNIO

/// A SQLite file with one write connection (transactions serialized by an async lock, `BEGIN IMMEDIATE` against
/// other processes) and one read connection. WAL mode lets reads run beside a write; `synchronous=FULL` makes
/// every acknowledged commit survive a crash or power loss.
public final class SQLiteDatabaseHandle: SQLDatabaseHandle {
    public let flavor = SQLFlavor.sqlite
    public let path: String
    private let writer: SQLiteConnection
    private let reader: SQLiteConnection
    private let writeLock = AsyncLock()

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

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await self.writeLock.withLock {
            let database = self.writer.sql(queryLogLevel: nil)
            try await database.raw("BEGIN IMMEDIATE").run()
            do {
                let result = try await body(database)
                try await database.raw("COMMIT").run()
                return result
            } catch {
                try? await database.raw("ROLLBACK").run()
                throw error
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
