import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TesseraCore

@testable import TesseraServer

/// `POST /api/auth/refresh` presented twice: the same client within the reuse interval gets the same pair (a phone that
/// lost the answer, two tabs at once); a replay later, from another client or after the successor was used is theft.
@Suite struct RefreshReuseTests {
    /// A refresh over the API as a client with this user agent and nonce sends it.
    static func refresh(
        _ client: some TestClientProtocol, _ token: String, userAgent: String? = "TesseraPhone/1.0", nonce: String? = nil
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let userAgent { headers[.userAgent] = userAgent }
        var body: [String: Any] = ["refreshToken": token]
        if let nonce { body["clientNonce"] = nonce }
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await client.execute(uri: "/api/auth/refresh", method: .post, headers: headers, body: ByteBuffer(bytes: data))
    }

    /// What the tests read of a refresh's answer, as a value that can leave a task.
    struct Answer: Sendable {
        let status: HTTPResponse.Status
        let refreshToken: String?
        let accessToken: String?
        let sessionId: String?

        init(_ response: TestResponse) throws {
            self.status = response.status
            let body = response.status == .ok ? try JSONBody(response) : nil
            self.refreshToken = body?.string("refreshToken")
            self.accessToken = body?.string("accessToken")
            self.sessionId = body?.string("sessionId")
        }
    }

    /// The token reuse rows of the audit trail, as the admin console reads them.
    static func reuseEvents(_ client: some TestClientProtocol) async throws -> [[String: Any]] {
        let admin = try #require(try await client.login("root@example.org", password: "admin password").string("accessToken"))
        let audit = try JSONBody(try await client.call(.get, "/api/admin/audit?event=TOKEN_REUSE_DETECTED", token: admin))
        return try #require(audit["events"] as? [[String: Any]])
    }

    /// The measured failure this fixes: twenty refreshes of one token at once gave one 200, nineteen 401s, and a
    /// revoked session. Now every one is answered with the same successor, and the session goes on.
    @Test func twentyRefreshesOfOneTokenAtOnceAllGetTheSamePairAndTheSessionLives() async throws {
        try await TestApp.run(admins: ["root@example.org"]) { client in
            try await client.register()
            let pair = try await client.login()
            let token = try #require(pair.string("refreshToken"))
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for _ in 0..<20 {
                    group.addTask { try Answer(try await Self.refresh(client, token)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.map(\.status) == Array(repeating: .ok, count: 20))
            #expect(Set(answers.map(\.refreshToken)).count == 1, "one successor for all")
            #expect(Set(answers.map(\.sessionId)) == [pair.string("sessionId")])
            for answer in answers { #expect(try await client.ping(answer.accessToken) == .ok) }
            let successor = try #require(answers.first?.refreshToken)
            #expect(successor != token)
            let next = try await Self.refresh(client, successor)
            #expect(next.status == .ok, "the successor works: the session was not taken for a stolen one")
            #expect(try await client.ping(JSONBody(next).string("accessToken")) == .ok)
            #expect(try await Self.reuseEvents(client).isEmpty)
        }
    }

    /// A phone whose answer was lost on the way sends the same refresh again (with the same nonce).
    @Test(arguments: [nil, "0f5c2a9e-retry-nonce"])
    func aRetryAfterALostAnswerGetsTheSamePair(nonce: String?) async throws {
        try await TestApp.run { client in
            try await client.register()
            let pair = try await client.login()
            let token = try #require(pair.string("refreshToken"))
            let lost = try JSONBody(try await Self.refresh(client, token, nonce: nonce))
            let retried = try await Self.refresh(client, token, nonce: nonce)
            #expect(retried.status == .ok)
            let again = try JSONBody(retried)
            #expect(again.string("refreshToken") == lost.string("refreshToken"))
            #expect(again.string("sessionId") == pair.string("sessionId"))
            #expect(try await client.ping(again.string("accessToken")) == .ok)
            #expect(try await client.ping(lost.string("accessToken")) == .ok)
            #expect(try await Self.refresh(client, try #require(again.string("refreshToken"))).status == .ok)
        }
    }

    /// Attack stopped: a refresh token copied off a device and replayed after its owner moved on (the successor was
    /// used) — within the interval and with the owner's user agent — ends the session, and is audited.
    @Test func aReplayAfterTheSuccessorWasUsedRevokesTheSession() async throws {
        let capture = LogCapture()
        try await TestApp.run(logger: capture.logger, admins: ["root@example.org"], { $0.logLevel = .trace }) { client in
            try await client.register()
            let pair = try await client.login()
            let stolen = try #require(pair.string("refreshToken"))
            let second = try JSONBody(try await Self.refresh(client, stolen))
            let third = try JSONBody(try await Self.refresh(client, try #require(second.string("refreshToken"))))
            #expect(try await client.ping(third.string("accessToken")) == .ok)

            let replay = try await Self.refresh(client, stolen)
            #expect(replay.status == .unauthorized)
            #expect(try JSONBody(replay).string("code") == "invalid_refresh_token")
            #expect(try await client.ping(third.string("accessToken")) == .unauthorized, "the session of a replayed token must end")
            #expect(try await Self.refresh(client, try #require(third.string("refreshToken"))).status == .unauthorized)
            let events = try await Self.reuseEvents(client)
            #expect(events.count == 1)
            #expect(events.first?["sessionId"] as? String == pair.string("sessionId"))
            #expect((events.first?["details"] as? [String: Any])?["reason"] as? String == "successor_used")
            for token in [stolen, second.string("refreshToken"), third.string("refreshToken")].compactMap({ $0 }) {
                #expect(!capture.text.contains(token), "a refresh token was logged")
            }
        }
    }

    /// Attack stopped: a refresh token replayed within the interval by another client — another user agent, or none —
    /// is not handed the owner's successor: the session ends.
    @Test(arguments: ["curl/8.0", nil])
    func aReplayFromAnotherUserAgentWithinTheIntervalRevokesTheSession(userAgent: String?) async throws {
        try await TestApp.run(admins: ["root@example.org"]) { client in
            try await client.register()
            let pair = try await client.login()
            let stolen = try #require(pair.string("refreshToken"))
            let owner = try JSONBody(try await Self.refresh(client, stolen, userAgent: "Mozilla/5.0 (owner's laptop)"))
            let replay = try await Self.refresh(client, stolen, userAgent: userAgent)
            #expect(replay.status == .unauthorized)
            #expect(try JSONBody(replay).string("refreshToken") == nil, "the replay got a pair")
            #expect(try await client.ping(owner.string("accessToken")) == .unauthorized)
            let ownersNext = try await Self.refresh(client, try #require(owner.string("refreshToken")), userAgent: "Mozilla/5.0 (owner's laptop)")
            #expect(ownersNext.status == .unauthorized)
            let events = try await Self.reuseEvents(client)
            #expect((events.first?["details"] as? [String: Any])?["reason"] as? String == "other_client")
        }
    }

    /// Attack stopped: a client that bound its refresh with a nonce is told apart from a replay with the same user
    /// agent (which anyone can copy) but another nonce, or none.
    @Test(arguments: ["another nonce", nil])
    func aReplayWithoutTheClientsNonceRevokesTheSession(replayNonce: String?) async throws {
        try await TestApp.run(admins: ["root@example.org"]) { client in
            try await client.register()
            let pair = try await client.login()
            let stolen = try #require(pair.string("refreshToken"))
            let owner = try JSONBody(try await Self.refresh(client, stolen, nonce: "owner's nonce"))
            let replay = try await Self.refresh(client, stolen, nonce: replayNonce)
            #expect(replay.status == .unauthorized)
            #expect(try await client.ping(owner.string("accessToken")) == .unauthorized)
            let events = try await Self.reuseEvents(client)
            #expect((events.first?["details"] as? [String: Any])?["reason"] as? String == "other_client")
        }
    }

    /// Attack stopped: a spent refresh token presented after the interval is a replay, whoever sends it.
    @Test func aPresentationAfterTheIntervalRevokesTheSession() async throws {
        try await TestApp.run(admins: ["root@example.org"], { $0.tokens.refreshReuseInterval = .seconds(1) }) { client in
            try await client.register()
            let pair = try await client.login()
            let token = try #require(pair.string("refreshToken"))
            let owner = try JSONBody(try await Self.refresh(client, token))
            try await Task.sleep(for: .milliseconds(1_200))
            #expect(try await Self.refresh(client, token).status == .unauthorized)
            #expect(try await client.ping(owner.string("accessToken")) == .unauthorized)
            let events = try await Self.reuseEvents(client)
            #expect((events.first?["details"] as? [String: Any])?["reason"] as? String == "after_reuse_interval")
        }
    }

    /// `TESSERA_REFRESH_REUSE_INTERVAL=0` restores strict one-time refresh tokens: even an immediate retry is reuse.
    @Test func anIntervalOfZeroMakesEveryRetryAReuse() async throws {
        try await TestApp.run({ $0.tokens.refreshReuseInterval = .zero }) { client in
            try await client.register()
            let pair = try await client.login()
            let token = try #require(pair.string("refreshToken"))
            let owner = try JSONBody(try await Self.refresh(client, token))
            #expect(try await Self.refresh(client, token).status == .unauthorized)
            #expect(try await client.ping(owner.string("accessToken")) == .unauthorized)
        }
    }

    /// A `clientNonce` that is not a short string is refused as bad input, before the refresh token is spent.
    @Test func aMalformedClientNonceIsRefusedWithoutSpendingTheToken() async throws {
        try await TestApp.run { client in
            try await client.register()
            let token = try #require(try await client.login().string("refreshToken"))
            for nonce in ["", String(repeating: "n", count: AuthService.maximumClientNonceLength + 1)] {
                let refused = try await Self.refresh(client, token, nonce: nonce)
                #expect(refused.status == .badRequest)
                #expect(try JSONBody(refused).string("code") == "invalid_request")
            }
            let number = try await client.postJSON("/api/auth/refresh", ["refreshToken": token, "clientNonce": 7])
            #expect(number.status == .badRequest)
            #expect(try JSONBody(number).string("code") == "invalid_body")
            // The longest nonce, counted in characters as the OpenAPI document's maxLength counts, not in bytes.
            let longest = String(repeating: "é", count: AuthService.maximumClientNonceLength)
            #expect(try await Self.refresh(client, token, nonce: longest).status == .ok, "the token was not spent by a refused request")
        }
    }

    @Test func theIntervalIsConfiguredFromZeroToSixtySeconds() throws {
        #expect(try Configuration.fromEnvironment([:]).tokens.refreshReuseInterval == .seconds(10))
        #expect(try Configuration.fromEnvironment(["TESSERA_REFRESH_REUSE_INTERVAL": "30s"]).tokens.refreshReuseInterval == .seconds(30))
        #expect(try Configuration.fromEnvironment(["TESSERA_REFRESH_REUSE_INTERVAL": "1500ms"]).tokens.refreshReuseInterval == .milliseconds(1500))
        for off in ["0", "0s", "0ms"] {
            #expect(try Configuration.fromEnvironment(["TESSERA_REFRESH_REUSE_INTERVAL": off]).tokens.refreshReuseInterval == .zero)
        }
        for wrong in ["61s", "2m", "-1", "s", "soon"] {
            #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment(["TESSERA_REFRESH_REUSE_INTERVAL": wrong]) }
        }
    }
}
