import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

@Suite struct MigratorTests {
    @Test(arguments: TestBackend.all) func upgradingFromThePreviousVersionKeepsEveryRow(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let handle = try await database.openHandle()
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

            #expect(try await migrator.migrate() == Array(2...Migrations.latestVersion))
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

    /// Attack stopped: two accounts a person cannot tell apart (`José` composed and decomposed, an address with a
    /// hidden NUL) surviving an upgrade as two sign-in targets, or being merged so that one person takes over the
    /// other's account. Neither happens: they are left as they were and reported.
    /// SQLite only: PostgreSQL cannot hold a NUL in text at all, so no such row can exist there to upgrade.
    @Test func upgradingNormalizesAddressesAndReportsWhatItCannotWithoutMergingOrDropping() async throws {
        try await TestDatabase.with(.sqlite) { database in
            let handle = try await database.openHandle()
            let migrator = Migrator(database: handle, logger: TestDatabase.logger)
            #expect(try await migrator.migrate(upTo: 3) == [1, 2, 3])
            let rows: [(String, String)] = [
                ("Ann@Example.org", "ann@example.org"),
                ("jose\u{301}@example.org", "jose\u{301}@example.org"),
                ("jos\u{e9}@example.org", "jos\u{e9}@example.org"),
                ("alice@example.org\u{0}.x", "alice@example.org\u{0}.x"),
                ("\u{FF26}\u{FF35}\u{FF2C}\u{FF2C}@example.org", "\u{FF46}\u{FF55}\u{FF4C}\u{FF4C}@example.org"),
            ]
            let ids = Self.ids
            try await handle.transaction { db in
                for (index, row) in rows.enumerated() {
                    try await db.raw(
                        """
                        INSERT INTO users (id, email, email_normalized, password_hash, role, created_at, updated_at)
                        VALUES (\(bind: Column.id(Self.ids[index])), \(bind: row.0), \(bind: row.1), 'hash', 'user', \(bind: index), 0)
                        """
                    ).run()
                }
            }
            #expect(try await migrator.migrate() == Array(4...Migrations.latestVersion))
            let store = SQLAuthStore(database: handle)
            #expect(try await store.credentials(normalizedEmail: "ann@example.org")?.user.id == ids[0])
            #expect(try await store.credentials(normalizedEmail: "full@example.org")?.user.email == "FULL@example.org")
            let conflicts = try await handle.read { db in
                try await db.raw("SELECT user_id, problem FROM identity_conflicts ORDER BY user_id").all().map {
                    (try $0.decode(column: "user_id", as: String.self), try $0.decode(column: "problem", as: String.self))
                }
            }
            #expect(conflicts.map(\.0) == [ids[1], ids[2], ids[3]].map(Column.id).sorted())
            #expect(Set(conflicts.map(\.1)) == ["collides", "invalid"])
            // Nothing merged, nothing dropped: every row is still there, the conflicting ones exactly as they were.
            let count = try await handle.read { db in try await db.raw("SELECT COUNT(*) AS n FROM users").first()?.decode(column: "n", as: Int.self) }
            #expect(count == rows.count)
            // The address with a hidden NUL did not become `alice@example.org`, which someone else may register.
            #expect(try await store.credentials(normalizedEmail: "alice@example.org") == nil)
            let hex = try await handle.read { db in
                try await db.raw("SELECT hex(email_normalized) AS h FROM users WHERE id = \(bind: Column.id(ids[3]))").first()?.decode(column: "h", as: String.self)
            }
            #expect(hex == Array("alice@example.org\u{0}.x".utf8).map { String(format: "%02X", $0) }.joined())
            await handle.close()
        }
    }

    /// Cuts written before causes were recorded are classified from what they left; anything unclear is final.
    @Test(arguments: TestBackend.all) func upgradingRecoversTheCausesOfOldCutsAndTreatsUnknownOnesAsFinal(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let handle = try await database.openHandle()
            let migrator = Migrator(database: handle, logger: TestDatabase.logger)
            #expect(try await migrator.migrate(upTo: 3) == [1, 2, 3])
            let user = Column.id(UUID())
            try await handle.transaction { db in
                try await db.raw(
                    """
                    INSERT INTO users (id, email, email_normalized, password_hash, role, created_at, updated_at)
                    VALUES (\(bind: user), 'a@example.org', 'a@example.org', 'hash', 'user', 0, 0)
                    """
                ).run()
                let cuts: [(String, String?, Int)] = [("subject", "logout_all", 10), ("subject", "typed by an admin", 20), ("global", nil, 30), ("subject", "left", 40)]
                for (kind, reason, at) in cuts {
                    try await db.raw(
                        """
                        INSERT INTO revocations (kind, user_id, accepted_from_version, epoch, revoked_at, reason, previous_value)
                        VALUES (\(bind: kind), \(bind: kind == "subject" ? user : nil), 1, 1, \(bind: at), \(bind: reason), 0)
                        """
                    ).run()
                }
                try await db.raw("INSERT INTO audit_events (at, event, details) VALUES (20, 'REVOKE_USERS', '{}')").run()
                try await db.raw("INSERT INTO audit_events (at, event, subject_id, details) VALUES (40, 'ACCOUNT_DEACTIVATED', \(bind: user), '{}')").run()
                try await db.raw(
                    "INSERT INTO revocations (kind, user_id, revoked_at, reason) VALUES ('subject', \(bind: user), 50, 'why not')"
                ).run()
            }
            #expect(try await migrator.migrate() == Array(4...Migrations.latestVersion))
            let causes = try await handle.read { db in
                try await db.raw("SELECT cause FROM revocations ORDER BY seq").all().map { try $0.decode(column: "cause", as: String.self) }
            }
            #expect(causes == ["sign_out_everywhere", "admin_revoke", "revoke_all", "deactivated", "unknown"])
            #expect(!RevocationCause(stored: "unknown").isUndoable)
            await handle.close()
        }
    }

    /// A revoke of several users written before `audit_subjects` existed is found by each of them after the
    /// upgrade: its list comes from the `userIds` of its details. A malformed id is skipped, not fatal.
    @Test(arguments: TestBackend.all) func upgradingListsTheSubjectsOfEarlierRevokesOfSeveralUsers(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let handle = try await database.openHandle()
            let migrator = Migrator(database: handle, logger: TestDatabase.logger)
            #expect(try await migrator.migrate(upTo: 5) == [1, 2, 3, 4, 5])
            let (ann, bob, carol) = (UUID(), UUID(), UUID())
            try await handle.transaction { db in
                let several = "{\"count\":\"3\",\"userIds\":\"\(Column.id(ann)),\(Column.id(bob)),not-an-id\"}"
                try await db.raw("INSERT INTO audit_events (at, event, details) VALUES (10, 'REVOKE_USERS', \(bind: several))").run()
                let one = "{\"count\":\"1\",\"userIds\":\"\(Column.id(carol))\"}"
                try await db.raw(
                    "INSERT INTO audit_events (at, event, subject_id, details) VALUES (20, 'REVOKE_USERS', \(bind: Column.id(carol)), \(bind: one))"
                ).run()
                try await db.raw("INSERT INTO audit_events (at, event, details) VALUES (30, 'REVOKE_ALL', '{}')").run()
            }
            #expect(try await migrator.migrate() == Array(6...Migrations.latestVersion))
            let store = SQLAuthStore(database: handle)
            for person in [ann, bob] {
                let found = try await store.auditEvents(AuditQuery(userId: person))
                #expect(found.map(\.at) == [Date(timeIntervalSince1970: 0.01)])
                #expect(Set(found.first?.subjectIds ?? []) == [ann, bob])
            }
            #expect(try await store.auditEvents(AuditQuery(userId: carol)).map(\.subjectIds) == [[]])
            let listed = try await handle.read { db in
                try await db.raw("SELECT COUNT(*) AS n FROM audit_subjects").first()?.decode(column: "n", as: Int.self)
            }
            #expect(listed == 2)
            await handle.close()
        }
    }

    static let ids = (0..<5).map { _ in UUID() }

    @Test(arguments: TestBackend.all) func migratingTwiceOrFromTwoProcessesAtOnceIsHarmless(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let first = try await database.openHandle()
            let second = try await database.openHandle()
            async let a = Migrator(database: first, logger: TestDatabase.logger).migrate()
            async let b = Migrator(database: second, logger: TestDatabase.logger).migrate()
            let applied = try await (a + b).sorted()
            #expect(applied == Migrations.all.map(\.version))
            await first.close()
            await second.close()
        }
    }

    @Test(arguments: TestBackend.all) func aDatabaseFromANewerTesseraIsRefused(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let handle = try await database.openHandle()
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
