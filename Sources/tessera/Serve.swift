import ArgumentParser
import Hummingbird
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif
import TesseraServer
import TesseraStore

/// `tessera serve`: the HTTP service.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP service (SQLite by default, no other set-up).")

    @Option(help: "Address to listen on (default: TESSERA_HOST or 127.0.0.1).") var host: String?
    @Option(help: "Port (default: TESSERA_PORT or 8080).") var port: Int?
    @Option(help: "Serve /metrics on this port of its own, on TESSERA_METRICS_HOST (default loopback) (default: TESSERA_METRICS_PORT, or none).")
    var metricsPort: Int?
    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        var configuration = try self.databaseOptions.configuration()
        if let host { configuration.host = host }
        if let port {
            guard (0...65_535).contains(port) else { throw UsageError(message: "--port must be from 0 to 65535") }
            configuration.port = port
        }
        if let metricsPort {
            guard (0...65_535).contains(metricsPort) else { throw UsageError(message: "--metrics-port must be from 0 to 65535") }
            configuration.metricsPort = metricsPort
        }
        let level = configuration.logLevel
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                switch format {
                case .text: StreamLogHandler.standardError(label: label)
                case .json: JSONLogHandler(label: label)
                }
            handler.logLevel = level
            return handler
        }
        let app = try await buildApplication(configuration: configuration)
        do {
            try await app.runService()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CommandError(
                message: "cannot listen on \(configuration.host):\(configuration.port): the address is in use (another tessera, or another program); "
                    + "choose another port with --port or TESSERA_PORT"
            )
        }
    }
}

/// `tessera migrate`: bring the schema up to date.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending schema migrations (serve also does this on start).")

    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        let configuration = try self.databaseOptions.configuration()
        var logger = Logger(label: "tessera.cli")
        logger.logLevel = .error
        let store = try await StoreFactory.open(configuration.database, migrate: false, logger: logger)
        let migrator = Migrator(database: store.database, logger: logger)
        let applied: [Int]
        let version: Int
        do {
            applied = try await migrator.migrate()
            version = try await migrator.currentVersion()
            await store.database.close()
        } catch {
            await store.database.close()
            throw error
        }
        print(applied.isEmpty ? "schema is up to date at version \(version)" : "applied \(applied.map(String.init).joined(separator: ", ")); schema is at version \(version)")
    }
}
