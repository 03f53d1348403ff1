import Foundation
import Testing

/// The real binary: a server process and CLI processes beside it on one SQLite file.
@Suite(.serialized) struct EndToEndTests {
    let binary: TesseraBinary
    let directory: URL
    let environment: [String: String]

    init() throws {
        self.binary = try TesseraBinary.locate()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = "sqlite://" + self.directory.appendingPathComponent("tessera.sqlite").path
        environment["BCRYPT_COST"] = "4"
        environment["LOG_LEVEL"] = "info"
        environment.removeValue(forKey: "JWT_SECRET")
        environment.removeValue(forKey: "TESSERA_ENV")
        self.environment = environment
    }

    func server() throws -> ServerProcess {
        try ServerProcess(binary: self.binary, environment: self.environment, logFile: self.directory.appendingPathComponent("server-\(UUID()).log"))
    }

    /// Polls until the condition holds or the time is up; returns how long it took.
    func waitUntil(within limit: Duration, _ condition: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while start.duration(to: .now) < limit {
            if try await condition() { return start.duration(to: .now) }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    @Test func revokeAllFromTheCommandLineIsEnforcedByTheRunningServerWithinASecond() async throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        // Only serve and migrate create a database; every other command refuses a path where there is none.
        let early = try self.binary.run(["users", "add", "ann@example.org", "--password-stdin"], environment: self.environment, stdin: "correct horse\n")
        #expect(early.status == 1)
        #expect(early.err.contains("there is no database at"), "\(early.err)")
        #expect(try self.binary.run(["migrate"], environment: self.environment).status == 0)
        let added = try self.binary.run(["users", "add", "ann@example.org", "--password-stdin"], environment: self.environment, stdin: "correct horse\n")
        #expect(added.status == 0, "\(added.err)")
        let server = try self.server()
        defer { server.stop() }
        let old = try await server.login("ann@example.org", "correct horse")
        #expect(try await server.request("GET", "/api/v1/ping-auth", token: old).status == 200)

        let revoked = try self.binary.run(["revoke-all", "--yes", "--reason", "end-to-end test"], environment: self.environment)
        #expect(revoked.status == 0, "\(revoked.err)")
        let took = try await self.waitUntil(within: .seconds(1)) {
            try await server.request("GET", "/api/v1/ping-auth", token: old).status == 401
        }
        #expect(took != nil, "the old token was still accepted a second after revoke-all")

        let fresh = try await server.login("ann@example.org", "correct horse")
        #expect(try await server.request("GET", "/api/v1/ping-auth", token: fresh).status == 200)
        #expect(try await server.request("GET", "/api/v1/ping-auth", token: old).status == 401)
    }

    @Test func acknowledgedRevocationsSurviveKillDashNine() async throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        let first = try self.server()
        #expect(try await first.request("POST", "/api/auth/register", json: ["email": "bob@example.org", "password": "correct horse"]).status == 201)
        let signedOut = try await first.login("bob@example.org", "correct horse")
        let revokedEverywhere = try await first.login("bob@example.org", "correct horse")
        #expect(try await first.request("POST", "/api/auth/logout", token: signedOut).status == 204)
        let kept = try await first.login("bob@example.org", "correct horse")
        #expect(try await first.request("GET", "/api/v1/ping-auth", token: revokedEverywhere).status == 200)
        // The user revoked from the CLI while the server runs, then the server dies without a chance to flush.
        let cli = try self.binary.run(["revoke", "--user", "BOB@example.org"], environment: self.environment)
        #expect(cli.status == 0, "\(cli.err)")
        _ = try await self.waitUntil(within: .seconds(1)) {
            try await first.request("GET", "/api/v1/ping-auth", token: kept).status == 401
        }
        first.kill()

        let second = try self.server()
        defer { second.stop() }
        #expect(try await second.request("GET", "/api/v1/ping-auth", token: signedOut).status == 401)
        #expect(try await second.request("GET", "/api/v1/ping-auth", token: revokedEverywhere).status == 401)
        #expect(try await second.request("GET", "/api/v1/ping-auth", token: kept).status == 401)
        // The development secret was kept beside the database, so a token issued after the restart works.
        let after = try await second.login("bob@example.org", "correct horse")
        #expect(try await second.request("GET", "/api/v1/ping-auth", token: after).status == 200)
    }

    @Test func theCommandLineExitCodesFollowTheContract() throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        let migrate = try self.binary.run(["migrate"], environment: self.environment)
        #expect(migrate.status == 0)
        #expect(migrate.out.contains("version"))

        let noYes = try self.binary.run(["revoke-all"], environment: self.environment)
        #expect(noYes.status == 2)
        #expect(noYes.err.contains("--yes"))

        let unknownUser = try self.binary.run(["revoke", "--user", "nobody@example.org"], environment: self.environment)
        #expect(unknownUser.status == 1)
        #expect(unknownUser.err.split(separator: "\n").count == 1)

        #expect(try self.binary.run(["revoke"], environment: self.environment).status == 2)
        #expect(try self.binary.run(["no-such-command"], environment: self.environment).status == 2)
        #expect(try self.binary.run(["users", "add", "x@example.org"], environment: self.environment).status == 2)
        #expect(try self.binary.run(["--help"], environment: self.environment).status == 0)

        let weak = try self.binary.run(["users", "add", "x@example.org", "--password-stdin"], environment: self.environment, stdin: "short\n")
        #expect(weak.status == 1)
        #expect(weak.err.contains("password"))

        var production = self.environment
        production["TESSERA_ENV"] = "production"
        let refused = try self.binary.run(["serve", "--port", "0"], environment: production)
        #expect(refused.status == 1)
        #expect(refused.err.contains("JWT_SECRET"))
        production["JWT_SECRET"] = "too short"
        #expect(try self.binary.run(["serve", "--port", "0"], environment: production).err.contains("32 bytes"))
    }

    @Test func deactivatingFromTheCommandLineSignsTheUserOutOfTheRunningServerWithinASecond() async throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        let server = try self.server()
        defer { server.stop() }
        #expect(try await server.request("POST", "/api/auth/register", json: ["email": "eve@example.org", "password": "correct horse"]).status == 201)
        let token = try await server.login("eve@example.org", "correct horse")

        let deactivated = try self.binary.run(["users", "deactivate", "EVE@example.org", "--reason", "left"], environment: self.environment)
        #expect(deactivated.status == 0, "\(deactivated.err)")
        let took = try await self.waitUntil(within: .seconds(1)) {
            try await server.request("GET", "/api/v1/ping-auth", token: token).status == 401
        }
        #expect(took != nil, "the deactivated user's token was still accepted a second later")
        #expect(try await server.request("POST", "/api/auth/login", json: ["email": "eve@example.org", "password": "correct horse"]).status == 403)

        let list = try self.binary.run(["users", "list", "--json"], environment: self.environment)
        let users = try #require(try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [String: Any])["users"] as? [[String: Any]]
        #expect(users?.first?["isActive"] as? Bool == false)
        #expect(try self.binary.run(["users", "list"], environment: self.environment).out.contains("eve@example.org"))

        // Un-revoking an inactive account is refused; after activation too: a deactivation is final, so the token
        // it cut (a leaver's, a thief's) never works again — the attack an "undo" of a security cut would allow.
        #expect(try self.binary.run(["unrevoke", "--user", "eve@example.org", "--yes"], environment: self.environment).status == 1)
        #expect(try self.binary.run(["users", "activate", "eve@example.org"], environment: self.environment).status == 0)
        #expect(try await server.request("GET", "/api/v1/ping-auth", token: token).status == 401)
        #expect(try self.binary.run(["unrevoke", "--user", "eve@example.org"], environment: self.environment).status == 2)
        let refused = try self.binary.run(["unrevoke", "--user", "eve@example.org", "--yes"], environment: self.environment)
        #expect(refused.status == 1)
        #expect(refused.err.contains("deactivating the account"), "\(refused.err)")
        #expect(try await server.request("GET", "/api/v1/ping-auth", token: token).status == 401)

        _ = try await server.login("eve@example.org", "correct horse")
        let sessions = try self.binary.run(["sessions", "eve@example.org", "--json"], environment: self.environment)
        let live = try #require(try JSONSerialization.jsonObject(with: Data(sessions.out.utf8)) as? [String: Any])["sessions"] as? [[String: Any]]
        #expect(live?.count == 1)

        let audit = try self.binary.run(["audit", "--user", "eve@example.org", "--json"], environment: self.environment)
        let events = try #require(try JSONSerialization.jsonObject(with: Data(audit.out.utf8)) as? [String: Any])["events"] as? [[String: Any]]
        #expect(
            events?.map { $0["event"] as? String } == [
                "AUTH_LOGIN", "UNREVOKE_REFUSED", "ACCOUNT_ACTIVATED", "UNREVOKE_REFUSED", "AUTH_LOGIN_FAILED", "ACCOUNT_DEACTIVATED", "AUTH_LOGIN",
                "USER_REGISTERED",
            ]
        )
        let table = try self.binary.run(["audit", "--event", "ACCOUNT_DEACTIVATED"], environment: self.environment)
        #expect(table.status == 0)
        #expect(table.out.contains("reason=left"))
        #expect(try self.binary.run(["audit", "--event", "NOPE"], environment: self.environment).status == 2)
        #expect(try self.binary.run(["audit", "--since", "yesterday"], environment: self.environment).status == 2)
        #expect(try self.binary.run(["sessions", "nobody@example.org"], environment: self.environment).status == 1)
    }

    /// What it stops: a revoke that hides from the trail of the people it cut. A revoke of Bob and Carol together
    /// is in Bob's trail, read from the command line (with emails, not id prefixes) and from the running server.
    @Test func aRevokeOfSeveralUsersIsInTheTrailOfEachOfThem() async throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        let server = try self.server()
        defer { server.stop() }
        for (email, admin) in [("ann@example.org", true), ("bob@example.org", false), ("carol@example.org", false)] {
            let added = try self.binary.run(
                ["users", "add", email, "--password-stdin"] + (admin ? ["--admin"] : []), environment: self.environment, stdin: "correct horse\n"
            )
            #expect(added.status == 0, "\(added.err)")
        }
        _ = try await server.login("bob@example.org", "correct horse")
        let revoked = try self.binary.run(
            ["revoke", "--user", "bob@example.org", "--user", "carol@example.org", "--reason", "lost"], environment: self.environment
        )
        #expect(revoked.status == 0, "\(revoked.err)")

        let table = try self.binary.run(["audit", "--user", "bob@example.org"], environment: self.environment)
        #expect(table.status == 0, "\(table.err)")
        let revokeLine = try #require(table.out.split(separator: "\n").first { $0.contains("REVOKE_USERS") })
        #expect(revokeLine.contains("bob@example.org") && revokeLine.contains("carol@example.org"), "\(revokeLine)")
        #expect(revokeLine.contains("reason=lost"))
        let loginLine = try #require(table.out.split(separator: "\n").first { $0.contains("AUTH_LOGIN") })
        #expect(loginLine.split(separator: " ").dropFirst(2).prefix(2) == ["bob@example.org", "bob@example.org"], "\(loginLine)")

        let json = try self.binary.run(["audit", "--user", "carol@example.org", "--json"], environment: self.environment)
        let events = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])["events"] as? [[String: Any]]
        let revoke = try #require(events?.first)
        #expect(revoke["event"] as? String == "REVOKE_USERS")
        let subjects = try #require(revoke["subjects"] as? [[String: Any]])
        #expect(Set(subjects.compactMap { $0["email"] as? String }) == ["bob@example.org", "carol@example.org"])
        let carolId = try #require(subjects.first { $0["email"] as? String == "carol@example.org" }?["id"] as? String)
        #expect(carolId == carolId.lowercased())
        #expect(events?.last?["event"] as? String == "USER_REGISTERED")
        #expect(events?.last?["subjectEmail"] as? String == "carol@example.org")
        #expect(events?.last?["subjectId"] as? String == carolId)

        let admin = try await server.login("ann@example.org", "correct horse")
        let api = try await server.request("GET", "/api/admin/audit?userId=\(carolId)&event=REVOKE_USERS", token: admin)
        #expect(api.status == 200)
        #expect((api.body["events"] as? [[String: Any]])?.count == 1)
    }

    /// SIGTERM is a graceful shutdown: requests and queued commits finish, the store closes, the process exits 0,
    /// and the log says so; ids in the log are written as the API writes them.
    @Test func sigtermShutsDownAfterTheInFlightCommitsAndSaysSo() async throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        let server = try self.server()
        defer { server.stop() }
        let registered = try await server.request("POST", "/api/auth/register", json: ["email": "dan@example.org", "password": "correct horse"])
        #expect(registered.status == 201)
        let token = try await server.login("dan@example.org", "correct horse")
        #expect(try await server.request("POST", "/api/auth/logout-all", token: token).status == 204)

        kill(server.process.processIdentifier, SIGTERM)
        let exited = try await self.waitUntil(within: .seconds(20)) { !server.process.isRunning }
        #expect(exited != nil, "tessera serve was still running 20 s after SIGTERM")
        server.process.waitUntilExit()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0)
        let log = try String(contentsOf: server.logFile, encoding: .utf8)
        let waiting = try #require(log.range(of: "shutting down: waiting for in-flight commits"), "\(log)")
        let durable = try #require(log.range(of: "shut down: every acknowledged commit is durable"), "\(log)")
        #expect(waiting.upperBound <= durable.lowerBound)
        let signedIn = try #require(log.split(separator: "\n").first { $0.contains("signed in") })
        let lowercaseId = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        #expect(signedIn.contains(try Regex("session=\(lowercaseId) user=\(lowercaseId)")), "\(signedIn)")
        let revokedLine = try #require(log.split(separator: "\n").first { $0.contains("revoked") && $0.contains("kind=subject") }, "\(log)")
        #expect(revokedLine.contains(/seq=\d+/), "\(revokedLine)")
        #expect(!log.contains("seq=["), "\(log)")
    }
}
