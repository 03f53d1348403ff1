import Foundation
import Logging
import SQLKit
import TesseraCore

/// Brings a database to a schema version. Idempotent, and safe when several processes start at once: each step
/// takes the database's migration lock first (SQLite: the write lock; PostgreSQL: an advisory lock), then re-checks
/// inside its transaction whether another process applied it first.
public struct Migrator: Sendable {
    let database: any SQLDatabaseHandle
    let migrations: [Migration]
    let logger: Logger

    public init(database: any SQLDatabaseHandle, migrations: [Migration] = Migrations.all, logger: Logger) {
        self.database = database
        self.migrations = migrations
        self.logger = logger
    }

    /// The highest version applied, 0 for a new database.
    public func currentVersion() async throws -> Int {
        try await self.ensureBookkeeping()
        return try await self.appliedVersion()
    }

    private func appliedVersion() async throws -> Int {
        try await self.database.read { db in
            try await db.raw("SELECT COALESCE(MAX(version), 0) AS version FROM tessera_migrations").first()?.decode(column: "version", as: Int.self) ?? 0
        }
    }

    /// Applies every pending step up to `target` (default: all). Returns the versions applied now.
    @discardableResult
    public func migrate(upTo target: Int? = nil) async throws -> [Int] {
        try await self.ensureBookkeeping()
        let target = target ?? Migrations.latestVersion
        let current = try await self.appliedVersion()
        if current > Migrations.latestVersion {
            throw MigrationError(
                description: "the database is at schema version \(current), newer than this tessera knows (\(Migrations.latestVersion)); upgrade tessera"
            )
        }
        var applied: [Int] = []
        for migration in self.migrations where migration.version > current && migration.version <= target {
            let statements = migration.sql(for: self.database.flavor)
            let didApply = try await self.waitingForOtherProcesses { db -> Bool in
                try await self.database.lockForMigration(on: db)
                let already = try await db.raw("SELECT 1 AS present FROM tessera_migrations WHERE version = \(bind: migration.version)").first()
                guard already == nil else { return false }
                for statement in statements {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await migration.rewrite?(db, self.logger)
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                try await db.raw(
                    "INSERT INTO tessera_migrations (version, name, applied_at) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: now))"
                ).run()
                return true
            }
            if didApply {
                applied.append(migration.version)
                self.logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
        }
        return applied
    }

    /// A transaction that waits out another process's migration (a lock held longer than a request would wait)
    /// for up to ``patience``, instead of failing the start.
    private func waitingForOtherProcesses<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        while true {
            do {
                return try await DatabaseWork.$isLong.withValue(true) { try await self.database.transaction(body) }
            } catch is StoreUnavailable where started.duration(to: .now) < Self.patience {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// How long a start waits for another process's migration.
    static let patience: Duration = .seconds(30)

    private func ensureBookkeeping() async throws {
        try await self.waitingForOtherProcesses { db in
            // Two PostgreSQL sessions creating the same table at once: one fails on the catalog's unique index
            // without the lock.
            try await self.database.lockForMigration(on: db)
            try await db.raw(
                "CREATE TABLE IF NOT EXISTS tessera_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            ).run()
        }
    }
}

/// A schema the running binary cannot work with.
public struct MigrationError: Error, CustomStringConvertible {
    public var description: String
}
