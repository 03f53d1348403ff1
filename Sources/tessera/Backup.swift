import ArgumentParser
import Foundation
import Logging
import TesseraStore

/// `tessera backup PATH`: a consistent copy of the SQLite database, taken while the server runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the SQLite database into a new file while the server runs, and check the copy.",
        discussion: """
            The copy is the whole database at one instant (SQLite's VACUUM INTO, one read transaction; the server's \
            writes go on). PATH must not exist: nothing is overwritten. The copy is synced, opened read-only and \
            checked (PRAGMA integrity_check, the schema version); a copy that fails is removed. PostgreSQL is backed \
            up with pg_dump or base backups instead: see docs/OPERATIONS.md, "Backups and restores".
            """
    )

    @Argument(help: "The new file to write (refused when anything is there).") var path: String
    @Flag(help: "Print what the backup holds as one JSON object.") var json = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        let configuration = try self.databaseOptions.configuration()
        var logger = Logger(label: "tessera.cli")
        logger.logLevel = .error
        let summary = try await DatabaseBackup(from: configuration.database, to: self.path, logger: logger).run()
        if self.json {
            try Output.printJSON(summary)
            return
        }
        print("backed up \(configuration.database) to \(Output.printable(summary.path)), verified (integrity check ok):")
        print("  schema version:  \(summary.schemaVersion)")
        print("  users:           \(summary.users)")
        print("  live sessions:   \(summary.liveSessions)")
        print("  revocation log:  \(summary.revocationLogRows) rows" + (summary.newestRevocationSeq.map { " (newest seq \($0))" } ?? ""))
        print("  audit rows:      \(summary.auditRows)")
        print("  file size:       \(summary.bytes) bytes")
    }
}
