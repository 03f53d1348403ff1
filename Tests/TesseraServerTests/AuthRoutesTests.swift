import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TesseraCore

@testable import TesseraServer

/// The user-facing routes of openapi.yaml through the real router, on a real SQLite file.
@Suite struct AuthRoutesTests {
    @Test func theReadmeWalkThroughWorks() async throws {
        try await TestApp.run { client in
            try await client.register()
            let first = try await client.login()
            let token = try #require(first.string("accessToken"))
            #expect(first.string("tokenType") == "Bearer")
            #expect(first["expiresIn"] as? Int == 900)
            #expect((first["user"] as? [String: Any])?["email"] as? String == "ann@example.org")
            #expect(try await client.ping(token) == .ok)

            #expect(try await client.call(.post, "/api/auth/logout-all", token: token).status == .noContent)
            let refused = try await client.call(.get, "/api/v1/ping-auth", token: token)
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.wwwAuthenticate]?.hasPrefix("Bearer realm=\"tessera\", error=\"invalid_token\"") == true)
            #expect(refused.headers[.contentType] == "application/problem+json")

            let second = try await client.login()
            #expect(try await client.ping(second.string("accessToken")) == .ok)
        }
    }

    @Test(arguments: ["/api/auth/logout-all", "/api/auth/logout/all", "/api/auth/sessions/revoke-all"])
    func everyNameOfSignOutEverywhereRevokesEveryDevice(path: String) async throws {
        try await TestApp.run { client in
            try await client.register()
            let laptop = try await client.login(device: "laptop").string("accessToken")
            let phone = try await client.login(device: "phone").string("accessToken")
            #expect(try await client.call(.post, path, token: laptop).status == .noContent)
            #expect(try await client.ping(laptop) == .unauthorized)
            #expect(try await client.ping(phone) == .unauthorized)
        }
    }

    @Test func signingOutEndsOnlyThisSession() async throws {
        try await TestApp.run { client in
            try await client.register()
            let laptop = try await client.login(device: "laptop")
            let phone = try await client.login(device: "phone").string("accessToken")
            #expect(try await client.call(.post, "/api/auth/logout", token: laptop.string("accessToken")).status == .noContent)
            #expect(try await client.ping(laptop.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(phone) == .ok)
            let refresh = try await client.postJSON("/api/auth/refresh", ["refreshToken": laptop.string("refreshToken")!])
            #expect(refresh.status == .unauthorized)
            #expect(try JSONBody(refresh).string("code") == "invalid_refresh_token")
        }
    }

    @Test func theSessionsListShowsLiveDevicesAndOneCanBeSignedOut() async throws {
        try await TestApp.run { client in
            try await client.register()
            let laptop = try await client.login(device: "laptop")
            let phone = try await client.login(device: "phone")
            let token = laptop.string("accessToken")
            let list = try JSONBody(try await client.call(.get, "/api/auth/sessions", token: token))
            let sessions = try #require(list["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2)
            let current = try #require(sessions.first { $0["current"] as? Bool == true })
            #expect(current["id"] as? String == laptop.string("sessionId"))
            #expect(current["deviceName"] as? String == "laptop")
            for key in ["createdAt", "lastSeenAt"] { #expect((current[key] as? String)?.hasSuffix("Z") == true) }

            let phoneId = try #require(phone.string("sessionId"))
            #expect(try await client.call(.delete, "/api/auth/sessions/\(phoneId)", token: token).status == .noContent)
            #expect(try await client.ping(phone.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(token) == .ok)
            let after = try JSONBody(try await client.call(.get, "/api/auth/sessions", token: token))
            #expect((after["sessions"] as? [[String: Any]])?.count == 1)

            #expect(try await client.call(.delete, "/api/auth/sessions/\(UUID())", token: token).status == .notFound)
            #expect(try await client.call(.delete, "/api/auth/sessions/not-a-uuid", token: token).status == .notFound)
        }
    }

    @Test func anotherUsersSessionIsNotFoundAndStaysSignedIn() async throws {
        try await TestApp.run { client in
            try await client.register("ann@x.org")
            try await client.register("bob@x.org")
            let ann = try await client.login("ann@x.org").string("accessToken")
            let bob = try await client.login("bob@x.org")
            let answer = try await client.call(.delete, "/api/auth/sessions/\(bob.string("sessionId")!)", token: ann)
            #expect(answer.status == .notFound)
            #expect(try await client.ping(bob.string("accessToken")) == .ok)
        }
    }

    @Test func refreshRotatesAndAReplayedRefreshTokenEndsTheSession() async throws {
        // Attack: a refresh token copied off a device and replayed after its owner refreshed on (the other replays,
        // and the retries that are not replays, are RefreshReuseTests').
        try await TestApp.run { client in
            try await client.register()
            let first = try await client.login()
            let rotated = try JSONBody(try await client.postJSON("/api/auth/refresh", ["refreshToken": first.string("refreshToken")!]))
            #expect(rotated.string("sessionId") == first.string("sessionId"))
            #expect(rotated.string("refreshToken") != first.string("refreshToken"))
            #expect(try await client.ping(rotated.string("accessToken")) == .ok)
            let owner = try JSONBody(try await client.postJSON("/api/auth/refresh", ["refreshToken": rotated.string("refreshToken")!]))
            #expect(try await client.ping(owner.string("accessToken")) == .ok)
            let replay = try await client.postJSON("/api/auth/refresh", ["refreshToken": first.string("refreshToken")!])
            #expect(replay.status == .unauthorized)
            #expect(try await client.ping(owner.string("accessToken")) == .unauthorized)
            #expect(try await client.postJSON("/api/auth/refresh", ["refreshToken": "not-a-token"]).status == .unauthorized)
        }
    }

    @Test func signingOutOfOtherDevicesReturnsAFreshPairForThisOne() async throws {
        try await TestApp.run { client in
            try await client.register()
            let laptop = try await client.login(device: "laptop").string("accessToken")
            let phone = try await client.login(device: "phone").string("accessToken")
            let response = try await client.call(.post, "/api/auth/logout-others", token: laptop)
            #expect(response.status == .ok)
            let fresh = try JSONBody(response)
            #expect(try await client.ping(fresh.string("accessToken")) == .ok)
            #expect(try await client.ping(phone) == .unauthorized)
            #expect(try await client.ping(laptop) == .unauthorized)
        }
    }

    @Test func meAndPasswordChange() async throws {
        try await TestApp.run { client in
            try await client.register("Ann@Example.org")
            let pair = try await client.login("ann@EXAMPLE.org")
            let token = try #require(pair.string("accessToken"))
            let me = try JSONBody(try await client.call(.get, "/api/me", token: token))
            #expect(me.string("email") == "Ann@Example.org")
            #expect(me.string("role") == "user")
            #expect(me["isActive"] as? Bool == true)

            let wrong = try await client.postJSON("/api/me/password", ["currentPassword": "nope nope", "newPassword": "brand new pw"], token: token)
            #expect(wrong.status == .unauthorized)
            #expect(try JSONBody(wrong).string("code") == "invalid_credentials")
            let weak = try await client.postJSON("/api/me/password", ["currentPassword": "correct horse", "newPassword": "short"], token: token)
            #expect(weak.status == .unprocessableContent)

            let changed = try await client.postJSON(
                "/api/me/password", ["currentPassword": "correct horse", "newPassword": "brand new pw"], token: token
            )
            #expect(changed.status == .ok)
            #expect(try await client.ping(JSONBody(changed).string("accessToken")) == .ok)
            #expect(try await client.ping(token) == .unauthorized)
            _ = try await client.login(password: "brand new pw")
        }
    }

    @Test func registrationRefusesTakenEmailsBadEmailsAndWeakPasswords() async throws {
        try await TestApp.run { client in
            try await client.register("ann@example.org")
            let cases: [([String: Any], HTTPResponse.Status, String)] = [
                (["email": "ANN@example.org", "password": "another pass"], .conflict, "email_taken"),
                (["email": "not an email", "password": "another pass"], .unprocessableContent, "invalid_email"),
                (["email": "bob@example.org", "password": "1234567"], .unprocessableContent, "weak_password"),
            ]
            for (body, status, code) in cases {
                let response = try await client.postJSON("/api/auth/register", body)
                #expect(response.status == status)
                #expect(try JSONBody(response).string("code") == code)
            }
        }
    }

    @Test func signInErrorsAreTheContractsCodes() async throws {
        try await TestApp.run { client in
            try await client.register()
            for (email, password) in [("ann@example.org", "wrong password"), ("nobody@example.org", "correct horse")] {
                let response = try await client.postJSON("/api/auth/login", ["email": email, "password": password])
                #expect(response.status == .unauthorized)
                #expect(try JSONBody(response).string("code") == "invalid_credentials")
            }
        }
    }

    @Test func repeatedFailedSignInsAreThrottledWith429() async throws {
        // Attack: online guessing of one account's password.
        try await TestApp.run { client in
            try await client.register()
            for _ in 0..<11 {
                _ = try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "guess guess"])
            }
            let locked = try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "correct horse"])
            #expect(locked.status == .tooManyRequests)
            #expect(try JSONBody(locked).string("code") == "too_many_attempts")
            #expect(locked.headers[.retryAfter] != nil)
        }
    }

    @Test func healthAndReadiness() async throws {
        try await TestApp.run { client in
            #expect(try await client.call(.get, "/health").status == .ok)
            // /ready bounds its database check at 0.8 s; on a test machine whose cores every suite shares at once, a
            // check can miss it as a load balancer's would: it asks again, and so does this test.
            var ready = try await client.call(.get, "/ready")
            for _ in 0..<10 where ready.status != .ok {
                try await Task.sleep(for: .milliseconds(500))
                ready = try await client.call(.get, "/ready")
            }
            #expect(ready.status == .ok, "\(String(buffer: ready.body))")
            #expect((try JSONBody(ready)["checks"] as? [String: String])?["revocationIndex"] == "current")
        }
    }

    @Test func aStaleRevocationIndexFailsClosed() async throws {
        // If the index cannot hear from the log, a revoked token could pass: answer 503 instead.
        try await TestApp.run({ configuration in
            configuration.followInterval = .seconds(3600)
            configuration.stalenessBound = .milliseconds(300)
        }) { client in
            try await client.register()
            let token = try await client.login().string("accessToken")
            try await Task.sleep(for: .milliseconds(600))
            let refused = try await client.call(.get, "/api/v1/ping-auth", token: token)
            #expect(refused.status == .serviceUnavailable)
            #expect(try JSONBody(refused).string("code") == "revocation_index_stale")
            #expect(try await client.call(.get, "/ready").status == .serviceUnavailable)
            #expect(try await client.call(.get, "/health").status == .ok)
        }
    }

    /// `/health` and `/api/v1/ping-auth` write their JSON as bytes; they must say what the contract says, as JSON.
    @Test func healthAndPingAnswerTheirJSON() async throws {
        try await TestApp.run { client in
            let health = try await client.call(.get, "/health")
            #expect(health.status == .ok)
            #expect(health.headers[.contentType] == "application/json; charset=utf-8")
            #expect(health.headers[.contentLength] == String(health.body.readableBytes))
            #expect(try JSONBody(health).object as NSDictionary == ["status": "ok"] as NSDictionary)

            try await client.register()
            let token = try #require(try await client.login().string("accessToken"))
            let me = try JSONBody(try await client.call(.get, "/api/me", token: token))
            for _ in 0..<2 {  // a new token, then the same one from the verified-token cache
                let ping = try await client.call(.get, "/api/v1/ping-auth", token: token)
                #expect(ping.status == .ok)
                #expect(ping.headers[.contentType] == "application/json; charset=utf-8")
                #expect(ping.headers[.contentLength] == String(ping.body.readableBytes))
                let body = try JSONBody(ping)
                #expect(body.object.count == 2)
                #expect(body["ok"] as? Bool == true)
                #expect(body.string("userId") == me.string("id"))
            }
        }
    }

    /// The refusals of a protected route are encoded once and answered as copies; each must still be the whole
    /// problem with its challenge, every time.
    @Test func theRefusalsOfAProtectedRouteAreWholeProblems() async throws {
        try await TestApp.run { client in
            try await client.register()
            let token = try #require(try await client.login().string("accessToken"))
            #expect(try await client.call(.post, "/api/auth/logout", token: token).status == .noContent)
            let cases: [(String?, String, String)] = [
                (token, "token_revoked", "The access token was revoked."),
                ("not-a-token", "invalid_token", "The access token is missing, malformed, expired or not ours."),
                (nil, "invalid_token", "A bearer access token is required."),
            ]
            for (sent, code, detail) in cases {
                for _ in 0..<2 {
                    let refused = try await client.call(.get, "/api/v1/ping-auth", token: sent)
                    #expect(refused.status == .unauthorized)
                    #expect(refused.headers[.contentType] == "application/problem+json")
                    #expect(refused.headers[.cacheControl] == "no-store")
                    // RFC 6750 §3.1: no token sent, no error code in the challenge.
                    let challenge =
                        sent == nil ? "Bearer realm=\"tessera\"" : "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"\(detail)\""
                    #expect(refused.headers[.wwwAuthenticate] == challenge)
                    let expected: NSDictionary = [
                        "type": "https://tessera.dev/problems/\(code.replacingOccurrences(of: "_", with: "-"))", "title": "Unauthorized",
                        "status": 401, "detail": detail, "code": code,
                    ]
                    #expect(try JSONBody(refused).object as NSDictionary == expected)
                }
            }
        }
    }

    @Test func noTokenOrPasswordEverReachesTheLog() async throws {
        let capture = LogCapture()
        try await TestApp.run(logger: capture.logger, { $0.logLevel = .trace }) { client in
            try await client.register(password: "super secret pw")
            let pair = try await client.login(password: "super secret pw")
            let refreshed = try JSONBody(try await client.postJSON("/api/auth/refresh", ["refreshToken": pair.string("refreshToken")!]))
            _ = try await client.postJSON("/api/auth/refresh", ["refreshToken": pair.string("refreshToken")!])
            _ = try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "wrong secret pw"])
            _ = try await client.ping("forged.token.value")
            _ = try await client.ping(refreshed.string("accessToken"))
            for secret in [
                "super secret pw", "wrong secret pw", pair.string("accessToken")!, pair.string("refreshToken")!,
                refreshed.string("accessToken")!, refreshed.string("refreshToken")!, TestApp.secret, "forged.token.value",
            ] {
                #expect(!capture.text.contains(secret))
            }
        }
        #expect(!capture.text.isEmpty)
    }
}
