import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

@Suite struct MigratorTests {
    @Test func upgradingFromThePreviousVersionKeepsEveryRow() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            let migrator = Migrator(database: handle, logger: TestDatabase.logger)
            #expect(try await migrator.migrate(upTo: 1) == [1])
            #expect(try await migrator.currentVersion() == 1)
            let userId = UUID()
            let sessionId = UUID()
            try await handle.transaction { db in
                try await db.raw(
                    """
                    INSERT INTO users (id, email, email_normalized, password_hash, role, is_active, token_version, accepted_from_version, created_at, updated_at)
                    VALUES (\(bind: Column.id(userId)), 'Old@Example.org', 'old@example.org', 'hash', 'admin', 1, 2, 2, 1000, 1000)
                    """
                ).run()
                try await db.raw(
                    """
                    INSERT INTO sessions (id, user_id, refresh_token_hash, created_at, last_seen_at, expires_at, token_version, epoch)
                    VALUES (\(bind: Column.id(sessionId)), \(bind: Column.id(userId)), 'h1', 1000, 1000, 99999999999999, 2, 0)
                    """
                ).run()
                try await db.raw(
                    "INSERT INTO revocations (kind, user_id, accepted_from_version, revoked_at) VALUES ('subject', \(bind: Column.id(userId)), 2, 1000)"
                ).run()
            }

            #expect(try await migrator.migrate() == [2, 3])
            #expect(try await migrator.migrate() == [])
            #expect(try await migrator.currentVersion() == Migrations.latestVersion)

            let store = SQLAuthStore(database: handle)
            let credentials = try #require(try await store.credentials(normalizedEmail: "old@example.org"))
            #expect(credentials.user.id == userId)
            #expect(credentials.user.email == "Old@Example.org")
            #expect(credentials.user.role == .admin)
            #expect(credentials.passwordHash == "hash")
            let sessions = try await store.liveSessions(userId: userId, now: Date(timeIntervalSince1970: 2))
            #expect(sessions.map(\.id) == [sessionId])
            let log = try await store.revocations(after: 0, limit: 10)
            #expect(log.map(\.kind) == [.subject(userId: userId, acceptedFromVersion: 2)])
            // The table version 2 adds works.
            try await store.recordAudit(AuditRecord(at: Date(), event: .authLogin, subjectId: userId))
            #expect(try await store.auditEvents(AuditQuery(userId: userId)).count == 1)
            await handle.close()
        }
    }

    @Test func migratingTwiceOrFromTwoProcessesAtOnceIsHarmless() async throws {
        try await TestDatabase.with { database in
            let first = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            let second = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            async let a = Migrator(database: first, logger: TestDatabase.logger).migrate()
            async let b = Migrator(database: second, logger: TestDatabase.logger).migrate()
            let applied = try await (a + b).sorted()
            #expect(applied == Migrations.all.map(\.version))
            await first.close()
            await second.close()
        }
    }

    @Test func aDatabaseFromANewerTesseraIsRefused() async throws {
        try await TestDatabase.with { database in
            let handle = try await SQLiteDatabaseHandle.open(path: database.path, logger: TestDatabase.logger)
            let migrator = Migrator(database: handle, logger: TestDatabase.logger)
            try await migrator.migrate()
            try await handle.transaction { db in
                try await db.raw("INSERT INTO tessera_migrations (version, name, applied_at) VALUES (99, 'future', 0)").run()
            }
            await #expect(throws: MigrationError.self) { try await migrator.migrate() }
            await handle.close()
        }
    }

    @Test func databaseURLsAreParsedAsTheContractSays() throws {
        #expect(try DatabaseURL(parsing: "sqlite:///var/lib/t.sqlite") == .sqlite(path: "/var/lib/t.sqlite"))
        #expect(try DatabaseURL(parsing: "sqlite://data/t.sqlite") == .sqlite(path: "data/t.sqlite"))
        #expect(try DatabaseURL(parsing: "t.sqlite") == .sqlite(path: "t.sqlite"))
        #expect(try DatabaseURL(parsing: "postgres://u:p@h:5432/db") == .postgres("postgres://u:p@h:5432/db"))
        #expect(DatabaseURL.postgres("postgres://u:secret@h:5432/db").description.contains("secret") == false)
        #expect(throws: DatabaseURLError.self) { try DatabaseURL(parsing: "mysql://x") }
        #expect(throws: DatabaseURLError.self) { try DatabaseURL(parsing: "") }
    }
}
