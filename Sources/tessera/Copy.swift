import ArgumentParser
import Foundation
import Logging
import TesseraStore

/// `tessera copy --from sqlite://old.sqlite --to postgres://…`: move a deployment to another database.
struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy every account, session, revocation and audit row into a new, empty database (e.g. SQLite to PostgreSQL).",
        discussion: """
            Stop the server first. The target is migrated, must be empty, and is filled one transaction per batch; the row \
            counts of both sides are compared at the end. Tokens issued before the copy keep working against the new \
            database (with the same JWT_SECRET), and revoked ones stay revoked.
            """
    )

    @Option(help: "The database to copy from (sqlite://… or postgres://…).") var from: String
    @Option(help: "The new, empty database to copy into (postgres://… or sqlite://…).") var to: String

    func run() async throws {
        var logger = Logger(label: "tessera.cli")
        logger.logLevel = .error
        let sourceURL = try DatabaseURL(parsing: self.from)
        let targetURL = try DatabaseURL(parsing: self.to)
        guard sourceURL != targetURL else { throw UsageError(message: "--from and --to name the same database") }
        let source = try await StoreFactory.open(sourceURL, migrate: false, create: false, logger: logger)
        let target: SQLAuthStore
        do {
            target = try await StoreFactory.open(targetURL, migrate: true, create: true, logger: logger)
        } catch {
            await source.database.close()
            throw error
        }
        let report: DatabaseCopy.Report
        do {
            // Counting a large table, or reading a batch of it, is long work, not a request.
            report = try await DatabaseWork.$isLong.withValue(true) {
                try await DatabaseCopy(from: source.database, to: target.database, logger: logger).run()
            }
            await source.database.close()
            await target.database.close()
        } catch {
            await source.database.close()
            await target.database.close()
            throw error
        }
        print("copied \(sourceURL) to \(targetURL):")
        for table in report.order { print("  \(table): \(report.rows[table] ?? 0) rows") }
        print("  global epoch: \(report.globalEpoch) (accepting from \(report.acceptedEpoch))")
        print("counts verified; start the servers on the new database with the same JWT_SECRET")
    }
}
