import Logging
import TesseraCore

/// Opens the database a URL names and brings its schema up to date.
public enum StoreFactory {
    /// Opens the database, runs pending migrations (when `migrate` is true), and returns the store over it.
    /// `create: false` refuses a database that does not exist yet (every command but `serve` and `migrate`).
    /// `poolSize` is the most connections a PostgreSQL handle opens (SQLite always uses three).
    public static func open(_ url: DatabaseURL, migrate: Bool = true, create: Bool = true, poolSize: Int = 10, logger: Logger) async throws -> SQLAuthStore {
        let handle: any SQLDatabaseHandle
        switch url {
        case .sqlite(let path):
            handle = try await SQLiteDatabaseHandle.open(path: path, create: create, logger: logger)
        case .postgres(let text):
            handle = try await PostgresDatabaseHandle.open(url: text, poolSize: poolSize, logger: logger)
        }
        if migrate {
            do {
                try await Migrator(database: handle, logger: logger).migrate()
            } catch {
                await handle.close()
                throw error
            }
        }
        return SQLAuthStore(database: handle)
    }
}
