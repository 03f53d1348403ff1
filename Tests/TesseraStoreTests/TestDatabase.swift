import Foundation
import Logging
import TesseraCore
import TesseraStore

/// A real SQLite file in a fresh temporary folder, removed afterwards.
struct TestDatabase {
    let directory: URL
    var path: String { self.directory.appendingPathComponent("tessera.sqlite").path }
    static let logger: Logger = {
        var logger = Logger(label: "tessera.test")
        logger.logLevel = .warning
        return logger
    }()

    init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    /// Runs the body with a fresh temporary database and removes it afterwards.
    static func with<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try TestDatabase()
        defer { try? FileManager.default.removeItem(at: database.directory) }
        return try await body(database)
    }

    /// Opens the file as one process would (its own connections, its own index), runs the body, closes it.
    @discardableResult
    func withProcess<T>(
        clock: any WallClock = SystemWallClock(), hasher: any PasswordHasher = BcryptPasswordHasher(cost: 4),
        _ body: (TestProcess) async throws -> T
    ) async throws -> T {
        let store = try await StoreFactory.open(.sqlite(path: self.path), logger: Self.logger)
        do {
            // No follower runs in these tests; a process that reads the log only when the test says so must not go
            // stale while a slow, loaded test run is still using it.
            let index = RevocationIndex(stalenessBound: .seconds(3600))
            let auth = try await AuthService(
                store: store, index: index, hasher: hasher, key: try await SigningKey(secret: String(repeating: "k", count: 32)),
                settings: TokenSettings(), clock: clock, logger: Self.logger
            )
            let follower = RevocationLogFollower(store: store, index: index, logger: Self.logger)
            try await follower.catchUp()
            let result = try await body(TestProcess(store: store, auth: auth, follower: follower))
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
