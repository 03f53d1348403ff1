import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import TesseraCore
import TesseraStore

@testable import TesseraServer

/// The database held by another process: answers come quickly and honestly, and nothing is lost or half-written.
@Suite struct FaultTests {
    /// Attack (or accident) stopped: a file locked by another process (`sqlite3` with an open write transaction, a
    /// backup tool) turning every sign-out into a 10-second hang and a 500.
    @Test func aLockedDatabaseAnswers503QuicklyAndTheSignOutIsNotApplied() async throws {
        try await Self.withSignedInApp { client, path, token in
            let locker = try await Self.holdWriteLock(on: path)
            let started = ContinuousClock.now
            let logout = try await client.call(.post, "/api/auth/logout", token: token)
            #expect(logout.status == .serviceUnavailable)
            #expect(try JSONBody(logout).string("code") == "database_unavailable")
            #expect(logout.headers[.retryAfter] != nil)
            // SQLite's busy timeout is 2 s; the old answer came after 10 s, as a 500.
            #expect(started.duration(to: .now) < .seconds(8))
            // Not applied: the token still works until the sign-out is sent again and commits.
            #expect(try await client.ping(token) == .ok)

            try await Self.release(locker)
            #expect(try await client.call(.post, "/api/auth/logout", token: token).status == .noContent)
            #expect(try await client.ping(token) == .unauthorized)
        }
    }

    /// RFC 7009 through a locked database: 503 with `Retry-After` (never "200, revoked" for a cut that did not
    /// commit), and the token keeps working until the revocation is sent again and commits.
    @Test func aTokenRevocationThatCannotCommitAnswers503() async throws {
        try await Self.withSignedInApp { client, path, token in
            let locker = try await Self.holdWriteLock(on: path)
            let form = ByteBuffer(string: "token=" + token)
            let headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let refused = try await client.execute(uri: "/oauth/revoke", method: .post, headers: headers, body: form)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] != nil)
            #expect(try await client.ping(token) == .ok)
            try await Self.release(locker)
            #expect(try await client.execute(uri: "/oauth/revoke", method: .post, headers: headers, body: form).status == .ok)
            #expect(try await client.ping(token) == .unauthorized)
        }
    }

    /// The real application on a file of its own, with an account signed in: the client, the file, the access token.
    static func withSignedInApp(_ test: @escaping @Sendable (any TestClientProtocol, String, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-fault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tessera.sqlite").path
        try await TestApp.run({ $0.database = .sqlite(path: path) }) { client in
            try await client.register()
            try await test(client, path, try #require(try await client.login().string("accessToken")))
        }
    }

    /// Another process takes the file's write lock and keeps it, until ``release(_:)``.
    static func holdWriteLock(on path: String) async throws -> SQLiteDatabaseHandle {
        let locker = try await SQLiteDatabaseHandle.open(path: path, create: false, logger: TestDatabase.quiet)
        try await locker.read { db in
            try await db.raw("BEGIN IMMEDIATE").run()
            try await db.raw("UPDATE global_state SET epoch = epoch WHERE id = 1").run()
        }
        return locker
    }

    static func release(_ locker: SQLiteDatabaseHandle) async throws {
        try await locker.read { db in try await db.raw("COMMIT").run() }
        await locker.close()
    }

    /// `/ready` is asked often by load balancers that give up soon: its database check answers within its bound
    /// whatever the database does (a SQLite call cannot be interrupted; its late answer is ignored).
    @Test func theReadinessCheckAnswersWithinItsBoundWhateverTheDatabaseDoes() async throws {
        // The work waits until the test lets it go, so the check can only have answered on its own deadline.
        let (gate, open) = AsyncStream<Void>.makeStream()
        let answered = await HealthController.succeeds(within: .milliseconds(300)) {
            for await _ in gate { break }
        }
        #expect(!answered)
        open.finish()
        #expect(await HealthController.succeeds(within: .seconds(5)) {})
        #expect(await !HealthController.succeeds(within: .seconds(5)) { throw StoreUnavailable("down") })
    }
}

enum TestDatabase {
    static var quiet: Logger {
        var logger = Logger(label: "tessera.test")
        logger.logLevel = .critical
        return logger
    }
}
