import Foundation
import Logging
import SQLKit
import Testing
import TesseraCore
import TesseraStore

/// The databases the store suite runs against: SQLite, and PostgreSQL when a cluster is named
/// (`TESSERA_TEST_POSTGRES_URL`). `TESSERA_TEST_BACKENDS` (`sqlite`, `postgres` or both, comma-separated) narrows
/// them: `scripts/test` runs every suite on SQLite, then this suite again on PostgreSQL alone, so that the two
/// halves do not share two cores with each other.
enum TestBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    static let all: [TestBackend] = {
        let available: [TestBackend] = PostgresTestCluster.url == nil ? [.sqlite] : [.sqlite, .postgres]
        guard let chosen = ProcessInfo.processInfo.environment["TESSERA_TEST_BACKENDS"], !chosen.isEmpty else { return available }
        let named = Set(chosen.split(separator: ",").compactMap { TestBackend(rawValue: $0.trimmingCharacters(in: .whitespaces)) })
        // A run asked for PostgreSQL with no cluster to run on must fail, not pass with no test cases.
        precondition(named.isSubset(of: available), "TESSERA_TEST_BACKENDS=\(chosen) names a database with no TESSERA_TEST_POSTGRES_URL")
        return available.filter(named.contains)
    }()
    var testDescription: String { self.rawValue }
}

/// The cluster the test command started: each test gets a schema of its own (a whole database each was too slow
/// to create for a hundred tests at once), created for it and dropped after. Tessera's advisory locks are per schema.
enum PostgresTestCluster {
    static let url = ProcessInfo.processInfo.environment["TESSERA_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

    /// The URL whose connections work in this schema.
    static func url(schema: String) throws -> String {
        guard let base = Self.url, var components = URLComponents(string: base) else { throw CancellationError() }
        components.queryItems = [URLQueryItem(name: "options", value: "-c search_path=\(schema)")]
        return components.string ?? base
    }

    static func create() async throws -> String {
        let name = "tessera_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await Self.administer("CREATE SCHEMA \(name)")
        return name
    }

    static func drop(_ name: String) async {
        try? await Self.administer("DROP SCHEMA IF EXISTS \(name) CASCADE")
    }

    private static func administer(_ statement: String) async throws {
        guard let url = Self.url else { return }
        let admin = try await PostgresDatabaseHandle.open(url: url, poolSize: 2, logger: TestDatabase.logger)
        do {
            try await DatabaseWork.$isLong.withValue(true) {
                try await admin.read { db in try await db.raw(SQLQueryString(statement)).run() }
            }
            await admin.close()
        } catch {
            await admin.close()
            throw error
        }
    }
}

/// A real database for one test: a SQLite file in a fresh temporary folder, or a fresh database on the test
/// cluster; removed afterwards.
struct TestDatabase {
    let backend: TestBackend
    let directory: URL
    /// The PostgreSQL database's name (nil for SQLite).
    let postgresName: String?
    var path: String { self.directory.appendingPathComponent("tessera.sqlite").path }
    var url: DatabaseURL {
        get throws {
            switch self.backend {
            case .sqlite: return .sqlite(path: self.path)
            case .postgres: return .postgres(try PostgresTestCluster.url(schema: self.postgresName ?? ""))
            }
        }
    }
    static let logger: Logger = {
        var logger = Logger(label: "tessera.test")
        logger.logLevel = .warning
        return logger
    }()

    init(backend: TestBackend) async throws {
        self.backend = backend
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.postgresName = backend == .postgres ? try await PostgresTestCluster.create() : nil
    }

    /// Runs the body with a fresh database and removes it afterwards.
    static func with<T>(_ backend: TestBackend = .sqlite, _ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try await TestDatabase(backend: backend)
        do {
            let result = try await body(database)
            await database.remove()
            return result
        } catch {
            await database.remove()
            throw error
        }
    }

    private func remove() async {
        try? FileManager.default.removeItem(at: self.directory)
        if let name = self.postgresName { await PostgresTestCluster.drop(name) }
    }

    /// A handle on the database, not migrated.
    func openHandle() async throws -> any SQLDatabaseHandle {
        switch try self.url {
        case .sqlite(let path): return try await SQLiteDatabaseHandle.open(path: path, logger: Self.logger)
        case .postgres(let url): return try await PostgresDatabaseHandle.open(url: url, logger: Self.logger)
        }
    }

    /// Opens the file as one process would (its own connections, its own index), runs the body, closes it.
    @discardableResult
    func withProcess<T>(
        clock: any WallClock = SystemWallClock(), hasher: any PasswordHasher = BcryptPasswordHasher(cost: 4), keys source: KeyManager.Source? = nil,
        _ body: (TestProcess) async throws -> T
    ) async throws -> T {
        let store = try await StoreFactory.open(try self.url, logger: Self.logger)
        do {
            // No follower runs in these tests; a process that reads the log only when the test says so must not go
            // stale while a slow, loaded test run is still using it.
            let index = RevocationIndex(stalenessBound: .seconds(3600))
            let settings = TokenSettings()
            let keys = try await KeyManager(
                store: store, index: index, schedule: KeySchedule(tokenLifetime: settings.accessTokenTTL + settings.leeway),
                source: source ?? .secrets(current: String(repeating: "k", count: 32), previous: []), clock: clock, logger: Self.logger
            )
            let auth = try await AuthService(
                store: store, index: index, hasher: hasher, keys: keys.ring, settings: settings, clock: clock, logger: Self.logger
            )
            let follower = RevocationLogFollower(store: store, index: index, logger: Self.logger)
            try await follower.catchUp()
            let result = try await body(TestProcess(store: store, auth: auth, follower: follower, keys: keys))
            await store.database.close()
            return result
        } catch {
            await store.database.close()
            throw error
        }
    }
}

/// One process's view of the database.
struct TestProcess {
    let store: SQLAuthStore
    let auth: AuthService
    let follower: RevocationLogFollower
    let keys: KeyManager

    /// Registers and signs in; returns the pair.
    func signUpAndIn(_ email: String = "ann@example.org", password: String = "correct horse", device: String? = nil) async throws -> TokenPair {
        if try await self.auth.user(email: email) == nil {
            _ = try await self.auth.register(email: email, password: password, origin: RequestOrigin(ip: "127.0.0.1"))
        }
        return try await self.auth.login(email: email, password: password, origin: RequestOrigin(ip: "127.0.0.1", userAgent: "test", deviceName: device))
    }

    /// Whether this process's server would accept the access token now.
    func accepts(_ pair: TokenPair) async -> Bool {
        (try? self.auth.authenticate(accessToken: pair.accessToken)) != nil
    }
}
