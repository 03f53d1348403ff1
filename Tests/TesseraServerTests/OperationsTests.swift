import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing
import TesseraCore

@testable import TesseraServer

/// What an operator sees: `/metrics`, `explain`, and log lines a machine can read.
@Suite struct OperationsTests {
    static let admin = "root@example.org"
    static let metricsToken = "metrics-token-0123456789"

    func adminToken(_ client: some TestClientProtocol) async throws -> String {
        try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
    }

    func explain(_ client: some TestClientProtocol, _ token: String, as admin: String) async throws -> JSONBody {
        let response = try await client.postJSON("/api/admin/explain", ["token": token], token: admin)
        #expect(response.status == .ok)
        // Whatever the answer, the token never comes back in it.
        #expect(!String(buffer: response.body).contains(token))
        return try JSONBody(response)
    }

    func cuts(_ body: JSONBody) -> [[String: Any]] {
        body["cuts"] as? [[String: Any]] ?? []
    }

    // MARK: Explain

    @Test func explainSaysWhichCutRefusesAnAccessTokenWithWhenWhoWhereAndTheAuditRow() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            let admin = try await self.adminToken(client)
            try await client.register()
            let pair = try await client.login()
            let access = try #require(pair.string("accessToken"))

            let accepted = try await self.explain(client, access, as: admin)
            #expect(accepted["accepted"] as? Bool == true)
            #expect(accepted.string("reason") == "accepted")
            #expect(accepted.string("tokenType") == "access_token")

            // Signed out: the session cut, by the user, from where, with its audit row.
            #expect(try await client.call(.post, "/api/auth/logout", token: access).status == .noContent)
            let signedOut = try await self.explain(client, access, as: admin)
            #expect(signedOut["accepted"] as? Bool == false)
            #expect(signedOut.string("reason") == "revoked")
            let cut = try #require(self.cuts(signedOut).first)
            #expect(cut["kind"] as? String == "session")
            #expect(cut["cause"] as? String == "sign_out")
            #expect(cut["actorEmail"] as? String == "ann@example.org")
            #expect(cut["auditEvent"] as? String == "AUTH_LOGOUT")
            #expect(cut["auditId"] as? Int != nil)
            #expect(cut["at"] as? String != nil)
        }
    }

    @Test func explainNamesAPasswordChangeAnAdminRevokeWithItsReasonAndARevokeAll() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            let admin = try await self.adminToken(client)
            try await client.register()
            let first = try #require(try await client.login().string("accessToken"))
            let changed = try await client.postJSON(
                "/api/me/password", ["currentPassword": "correct horse", "newPassword": "battery staple"], token: first
            )
            #expect(changed.status == .noContent || changed.status == .ok)
            let byPassword = try await self.explain(client, first, as: admin)
            #expect(self.cuts(byPassword).first?["kind"] as? String == "subject")
            #expect(self.cuts(byPassword).first?["cause"] as? String == "password_changed")
            #expect(self.cuts(byPassword).first?["auditEvent"] as? String == "PASSWORD_CHANGED")

            let second = try await client.login(password: "battery staple")
            let secondAccess = try #require(second.string("accessToken"))
            let userId = try #require((second["user"] as? [String: Any])?["id"] as? String)
            let revoked = try await client.postJSON("/api/admin/revoke", ["userIds": [userId], "reason": "phone stolen"], token: admin)
            #expect(revoked.status == .ok)
            let byAdmin = try await self.explain(client, secondAccess, as: admin)
            let adminCut = try #require(self.cuts(byAdmin).first)
            #expect(adminCut["cause"] as? String == "admin_revoke")
            #expect(adminCut["reason"] as? String == "phone stolen")
            #expect(adminCut["actorEmail"] as? String == Self.admin)

            let third = try #require(try await client.login(password: "battery staple").string("accessToken"))
            #expect(try await client.postJSON("/api/admin/revoke-all", ["reason": "incident 42"], token: admin).status == .ok)
            let newAdmin = try await self.adminToken(client)
            let byEveryone = try await self.explain(client, third, as: newAdmin)
            let global = try #require(self.cuts(byEveryone).first)
            #expect(global["kind"] as? String == "global")
            #expect(global["reason"] as? String == "incident 42")
            #expect(global["auditEvent"] as? String == "REVOKE_ALL")
        }
    }

    @Test func explainJudgesRefreshTokensWithoutSpendingOrRevokingThem() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            let admin = try await self.adminToken(client)
            try await client.register()
            let pair = try await client.login()
            let refresh = try #require(pair.string("refreshToken"))
            let current = try await self.explain(client, refresh, as: admin)
            #expect(current["accepted"] as? Bool == true)
            #expect(current.string("tokenType") == "refresh_token")

            let rotated = try await client.postJSON("/api/auth/refresh", ["refreshToken": refresh])
            #expect(rotated.status == .ok)
            let successor = try #require(try JSONBody(rotated).string("refreshToken"))
            let spent = try await self.explain(client, refresh, as: admin)
            #expect(spent.string("reason") == "spent_refresh_token")
            #expect(spent.string("spentAt") != nil)
            // Explaining the spent token is not presenting it: the session lives on.
            #expect(try await client.postJSON("/api/auth/refresh", ["refreshToken": successor]).status == .ok)
        }
    }

    @Test(arguments: [
        ("", "not_a_token"), ("hello world", "not_a_token"), ("a.b.c", "malformed"),
        ("tsr_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "malformed"), (APIToken.generate(), "unknown_api_token"),
        (String(repeating: "A", count: 43), "unknown_refresh_token"),
    ])
    func explainRefusesWhatIsNoTokenOfOursWithAStableReason(_ token: String, _ reason: String) async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            let admin = try await self.adminToken(client)
            let answer = try await client.postJSON("/api/admin/explain", ["token": token], token: admin)
            #expect(answer.status == .ok)
            #expect(try JSONBody(answer).string("reason") == reason)
        }
    }

    @Test func explainSaysAForgedSignatureIsOne() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            let admin = try await self.adminToken(client)
            var parts = admin.split(separator: ".").map(String.init)
            parts[2] = String(parts[2].reversed())
            let forged = parts.joined(separator: ".")
            #expect(try await self.explain(client, forged, as: admin).string("reason") == "bad_signature")
        }
    }

    @Test func explainIsForAdminsOnlyAndWantsAToken() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let user = try #require(try await client.login().string("accessToken"))
            #expect(try await client.postJSON("/api/admin/explain", ["token": user]).status == .unauthorized)
            #expect(try await client.postJSON("/api/admin/explain", ["token": user], token: user).status == .forbidden)
            let admin = try await self.adminToken(client)
            let missing = try await client.postJSON("/api/admin/explain", [:], token: admin)
            #expect(missing.status == .badRequest)
        }
    }

    // MARK: Metrics

    @Test func metricsAreNotOnTheMainPortWithoutAToken() async throws {
        try await TestApp.run(admins: []) { client in
            let response = try await client.call(.get, "/metrics")
            #expect(response.status == .notFound)
        }
    }

    @Test func metricsOnTheMainPortAskForTheirTokenAndCountChecksByOutcome() async throws {
        try await TestApp.run({ $0.metricsToken = Self.metricsToken }) { client in
            let anonymous = try await client.call(.get, "/metrics")
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            #expect(try JSONBody(anonymous).string("code") == "invalid_token")
            #expect(try await client.call(.get, "/metrics", token: Self.metricsToken + "x").status == .unauthorized)
            #expect(try await client.call(.get, "/metrics", token: String(Self.metricsToken.dropLast())).status == .unauthorized)

            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let before = try await self.scrape(client)
            for _ in 0..<3 { #expect(try await client.ping(access) == .ok) }
            #expect(try await client.call(.post, "/api/auth/logout", token: access).status == .noContent)
            #expect(try await client.ping(access) == .unauthorized)
            let after = try await self.scrape(client)
            // Other suites count in the same process: at least what this test did.
            #expect(after.value("tessera_token_checks_total", ["outcome": "accepted"]) - before.value("tessera_token_checks_total", ["outcome": "accepted"]) >= 4)
            #expect(
                after.value("tessera_token_checks_total", ["outcome": "revoked_session"])
                    - before.value("tessera_token_checks_total", ["outcome": "revoked_session"]) >= 1
            )
            #expect(after.value("tessera_revocations_total", ["kind": "session"]) - before.value("tessera_revocations_total", ["kind": "session"]) >= 1)
            #expect(
                after.value("tessera_http_requests_total", ["route": "/api/v1/ping-auth", "method": "GET", "status": "200"])
                    - before.value("tessera_http_requests_total", ["route": "/api/v1/ping-auth", "method": "GET", "status": "200"]) >= 3
            )
            #expect(after.text.contains("# TYPE tessera_http_request_duration_seconds histogram"))
            #expect(after.text.contains("tessera_revocation_index_age_seconds "))
            #expect(after.value("tessera_revocation_index_age_seconds", [:]) < 5)
        }
    }

    struct Scrape {
        let text: String

        /// The value of the sample with this name and exactly these labels (0 when absent).
        func value(_ name: String, _ labels: [String: String]) -> Double {
            for line in self.text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
                let rest = line.dropFirst(name.count)
                var found: [String: String] = [:]
                var valueText = rest
                if rest.hasPrefix("{"), let close = rest.firstIndex(of: "}") {
                    for pair in rest[rest.index(after: rest.startIndex)..<close].split(separator: ",") {
                        let parts = pair.split(separator: "=", maxSplits: 1)
                        if parts.count == 2 { found[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
                    }
                    valueText = rest[rest.index(after: close)...]
                } else if !rest.hasPrefix(" ") {
                    continue
                }
                if found == labels, let value = Double(valueText.trimmingCharacters(in: .whitespaces)) { return value }
            }
            return 0
        }
    }

    func scrape(_ client: some TestClientProtocol) async throws -> Scrape {
        let response = try await client.call(.get, "/metrics", token: Self.metricsToken)
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return Scrape(text: String(buffer: response.body))
    }

    @Test func aShortMetricsTokenIsRefusedAtStart() throws {
        #expect(throws: ConfigurationError.self) {
            try Configuration.fromEnvironment(["TESSERA_METRICS_TOKEN": "short"])
        }
        #expect(try Configuration.fromEnvironment(["TESSERA_METRICS_TOKEN": Self.metricsToken]).metricsToken == Self.metricsToken)
        #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment(["LOG_FORMAT": "xml"]) }
        // One no bearer header could carry.
        #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment(["TESSERA_METRICS_TOKEN": "metrics token 0123456789"]) }
    }

    // MARK: Logs

    /// ServiceLifecycle logs every service by its description at `debug`: without one of their own, the services
    /// printed the store, the cookie secret and the decoy password, property by property.
    @Test func servicesDescribeThemselvesWithoutWhatTheyHold() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-describe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Configuration(
            database: .sqlite(path: directory.appendingPathComponent("t.sqlite").path), jwtSecret: TestApp.secret, bcryptCost: 4, logLevel: .critical
        )
        let services = try await buildServices(configuration: configuration, logger: Logger(label: "test"))
        let printed = [
            "\(services)", String(reflecting: services), "\(services.auth)", String(reflecting: services.auth), "\(services.follower)",
            String(reflecting: services.browser), "\(StoreCloser(services: services, logger: Logger(label: "test")))",
        ].joined(separator: "\n")
        await services.close()
        #expect(!printed.contains(TestApp.secret))
        #expect(!printed.contains("decoy"))
        #expect(!printed.contains("sqlite"))
    }

    @Test func jsonLinesCarryTheFixedMembersAndNumbersAsNumbers() throws {
        let lines = Mutex<[Data]>([])
        var handler = JSONLogHandler(label: "tessera") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .trace
        handler[metadataKey: "request"] = "abc"
        let logger = Logger(label: "tessera") { _ in handler }
        // Metadata named like a fixed member cannot replace it; a message with a line break stays on one line.
        logger.info("two\nlines", metadata: ["status": .stringConvertible(204), "durationMs": .stringConvertible(1.5), "message": "forged", "level": "forged"])
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(line.dropLast().contains(UInt8(ascii: "\n")) == false)
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["message"] as? String == "two\nlines")
        #expect(object["level"] as? String == "info")
        #expect(object["status"] as? Int == 204)
        #expect(object["durationMs"] as? Double == 1.5)
        #expect(object["request"] as? String == "abc")
        #expect((object["time"] as? String).flatMap { try? Date($0, strategy: .iso8601) } != nil)
    }

    @Test func everyRequestGetsOneAccessLineWithItsIdRouteStatusAndUser() async throws {
        let capture = LogCapture()
        try await TestApp.run(logger: capture.logger, { $0.logLevel = .info }) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let response = try await client.execute(
                uri: "/api/v1/ping-auth", method: .get, headers: [.authorization: "Bearer \(access)", RequestIdMiddleware<TesseraRequestContext>.headerName: "trace-42"], body: nil
            )
            #expect(response.status == .ok)
            let line = try #require(capture.lines.withLock { $0 }.first { $0.hasPrefix("info request ") && $0.contains("trace-42") })
            #expect(line.contains("/api/v1/ping-auth"))
            #expect(line.contains("200"))
            #expect(line.contains("user"))
            // The token is never part of a line.
            #expect(!capture.text.contains(access))
        }
    }
}
