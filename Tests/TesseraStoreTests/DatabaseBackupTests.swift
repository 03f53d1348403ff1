import Foundation
import Logging
import SQLKit
import TesseraCore
import Testing

@testable import TesseraStore

/// `tessera backup`: a copy of a SQLite file in use, at one instant, never over an existing file, verified, and
/// removed when it fails.
@Suite struct DatabaseBackupTests {
    /// Attack: a restore from backup revives tokens whose revocation had been acknowledged before the backup (a torn
    /// or stale copy). Everything acknowledged before the backup began must be in it, sign-outs and their sessions'
    /// rows must agree (one instant, not table by table), and the server's writes must go on while it runs.
    @Test func aBackupTakenWhileWritesGoOnHoldsEveryAcknowledgedRevocation() async throws {
        try await TestDatabase.with { database in
            try await TestDatabase.with { restored in
                try await database.withProcess { process in
                    let kept = try await process.signUpAndIn("kept@example.org")
                    let signedOut = try await process.signUpAndIn("out@example.org")
                    try await process.auth.logout(try process.auth.authenticate(accessToken: signedOut.accessToken), origin: RequestOrigin())
                    let revoked = try await process.signUpAndIn("revoked@example.org")
                    _ = try await process.auth.revokeUsers([revoked.user.id], actorId: nil, reason: "lost laptop", origin: .commandLine)
                    let acknowledged = try await process.store.revocations(after: 0, limit: 1000)

                    // Writers keep signing in and out while the copy is taken: none may be refused or kept waiting out.
                    async let writes: Int = {
                        var done = 0
                        for n in 0..<30 {
                            let pair = try await process.signUpAndIn("writer\(n)@example.org")
                            try await process.auth.logout(try process.auth.authenticate(accessToken: pair.accessToken), origin: RequestOrigin())
                            done += 1
                        }
                        return done
                    }()
                    let summary = try await DatabaseBackup(from: try database.url, to: restored.path, logger: TestDatabase.logger).run()
                    #expect(try await writes == 30)

                    #expect(summary.path == restored.path)
                    #expect(summary.schemaVersion == Migrations.latestVersion)
                    #expect(summary.users >= 3)
                    #expect(summary.revocationLogRows >= acknowledged.count)
                    #expect(summary.newestRevocationSeq ?? 0 >= acknowledged.last?.seq ?? 1)
                    #expect(summary.auditRows > 0)
                    let size = try FileManager.default.attributesOfItem(atPath: restored.path)
                    #expect(summary.bytes == (size[.size] as? NSNumber)?.int64Value)
                    // It holds password hashes: readable by its owner only.
                    #expect((size[.posixPermissions] as? NSNumber)?.intValue == 0o600)
                    // The partial file it was written to is gone: the copy is at its path and nowhere else.
                    #expect(try FileManager.default.contentsOfDirectory(atPath: restored.directory.path) == ["tessera.sqlite"])

                    try await restored.withProcess { copy in
                        let log = try await copy.store.revocations(after: 0, limit: 10_000)
                        #expect(Array(log.prefix(acknowledged.count)) == acknowledged)
                        #expect(log.count == summary.revocationLogRows)
                        #expect(await copy.accepts(kept))
                        #expect(await !copy.accepts(signedOut))
                        #expect(await !copy.accepts(revoked))
                        let torn: Int = try await copy.store.database.read { db in
                            try await db.raw(
                                """
                                SELECT COUNT(*) AS n FROM revocations r WHERE r.kind = 'session' AND NOT EXISTS (
                                    SELECT 1 FROM sessions s WHERE s.id = r.session_id AND s.invalidated_at IS NOT NULL)
                                """
                            ).first()?.decode(column: "n", as: Int.self) ?? -1
                        }
                        #expect(torn == 0, "a sign-out's log row without its session's invalidation: the copy is not of one instant")
                    }
                }
            }
        }
    }

    /// Attack: a mistyped or repeated command destroys the last good backup (or any other file) by writing over it.
    @Test func aPathThatExistsIsRefusedAndLeftUntouched() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in _ = try await process.signUpAndIn() }
            let existing = database.directory.appendingPathComponent("last-good.sqlite").path
            let precious = Data("yesterday's backup".utf8)
            try precious.write(to: URL(fileURLWithPath: existing))
            let empty = database.directory.appendingPathComponent("empty").path
            #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
            for path in [existing, empty, database.path] {
                let error = try await #require(throws: BackupError.self) {
                    try await DatabaseBackup(from: try database.url, to: path, logger: TestDatabase.logger).run()
                }
                #expect(error.description.contains("never overwrites"))
            }
            #expect(FileManager.default.contents(atPath: existing) == precious)
            #expect(FileManager.default.contents(atPath: empty) == Data())
            // A dangling symbolic link is something there too: following it would write where it points.
            let link = database.directory.appendingPathComponent("link.sqlite").path
            let target = database.directory.appendingPathComponent("elsewhere.sqlite").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            await #expect(throws: BackupError.self) {
                try await DatabaseBackup(from: try database.url, to: link, logger: TestDatabase.logger).run()
            }
            #expect(!FileManager.default.fileExists(atPath: target))
        }
    }

    /// A PostgreSQL database is refused with a pointer to its own tools, before anything is connected to or written.
    @Test func aPostgresDatabaseIsRefusedWithAPointerToPgDump() async throws {
        try await TestDatabase.with { database in
            let destination = database.directory.appendingPathComponent("backup.sqlite").path
            let error = try await #require(throws: BackupError.self) {
                let backup = DatabaseBackup(from: .postgres("postgres://tessera@127.0.0.1:1/tessera"), to: destination, logger: TestDatabase.logger)
                return try await backup.run()
            }
            #expect(error.description.contains("pg_dump"))
            #expect(error.description.contains("docs/OPERATIONS.md"))
            #expect(!FileManager.default.fileExists(atPath: destination))
        }
    }

    /// A copy that fails half-way (here: the source has a damaged page, met after the first tables were written) is
    /// removed, so that a half-written file is never taken for a backup.
    @Test func aCopyThatFailsHalfWayIsRemoved() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in
                _ = try await process.signUpAndIn()
                // A table with no index, filled last: the file's last pages are its rows, which VACUUM INTO must read.
                for batch in 0..<20 {
                    try await process.store.database.transaction { db in
                        for row in 0..<50 {
                            try await db.raw(
                                """
                                INSERT INTO identity_conflicts (user_id, email, problem, found_at)
                                VALUES (\(bind: "u\(batch)-\(row)"), \(bind: String(repeating: "x", count: 200)), 'test', 0)
                                """
                            ).run()
                        }
                    }
                }
            }
            let source = try FileHandle(forUpdating: URL(fileURLWithPath: database.path))
            let size = try source.seekToEnd()
            try source.seek(toOffset: size - 3 * 4096)
            try source.write(contentsOf: Data(repeating: 0xA5, count: 3 * 4096))
            try source.close()

            let destination = database.directory.appendingPathComponent("backup.sqlite").path
            let error = try await #require(throws: BackupError.self) {
                try await DatabaseBackup(from: try database.url, to: destination, logger: TestDatabase.logger).run()
            }
            #expect(error.description.contains("nothing was left there"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: database.directory.path).sorted() == ["tessera.sqlite"])
        }
    }

    /// A database the migrations have not reached is refused before anything is written: its copy could not be
    /// served by this tessera as it is.
    @Test func aSourceAtAnOlderSchemaIsRefusedBeforeAnythingIsWritten() async throws {
        try await TestDatabase.with { database in
            let handle = try await database.openHandle()
            try await Migrator(database: handle, logger: TestDatabase.logger).migrate(upTo: Migrations.latestVersion - 1)
            await handle.close()
            let destination = database.directory.appendingPathComponent("backup.sqlite").path
            let error = try await #require(throws: BackupError.self) {
                try await DatabaseBackup(from: try database.url, to: destination, logger: TestDatabase.logger).run()
            }
            #expect(error.description.contains("tessera migrate"))
            #expect(!FileManager.default.fileExists(atPath: destination))
        }
    }

    /// The check opens the copy read-only, as a database of its own: it writes nothing, not even to a copy that is
    /// read-only on disk, and a file that is not a database fails it.
    @Test func verifyingOpensTheCopyReadOnly() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in _ = try await process.signUpAndIn() }
            let destination = database.directory.appendingPathComponent("a folder with ?#% in its name").appendingPathComponent("b.sqlite").path
            try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let summary = try await DatabaseBackup(from: try database.url, to: destination, logger: TestDatabase.logger).run()
            let before = try Data(contentsOf: URL(fileURLWithPath: destination))
            try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: destination)
            #expect(try await DatabaseBackup.verify(destination, logger: TestDatabase.logger) == summary)
            #expect(try Data(contentsOf: URL(fileURLWithPath: destination)) == before)
            #expect(summary.users == 1)
            #expect(summary.liveSessions == 1)

            let notADatabase = database.directory.appendingPathComponent("notes.txt").path
            try Data(String(repeating: "not a database\n", count: 400).utf8).write(to: URL(fileURLWithPath: notADatabase))
            await #expect(throws: BackupError.self) { try await DatabaseBackup.verify(notADatabase, logger: TestDatabase.logger) }
        }
    }
}
