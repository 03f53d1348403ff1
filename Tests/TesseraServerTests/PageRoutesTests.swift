import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TesseraCore

@testable import TesseraServer

/// The web pages over HTTP: cookies, CSRF, silent refresh and what a revoked browser sees. The same pages are
/// driven in a real Chromium by `Tests/Browser/test_pages.py`.
@Suite struct PageRoutesTests {
    /// A browser's cookie jar, kept by hand: the router test client has none.
    struct Jar {
        var cookies: [String: String] = [:]

        mutating func take(_ response: TestResponse) {
            for header in response.headers[values: .setCookie] {
                let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(pair[0])
                let value = pair.count > 1 ? String(pair[1]) : ""
                if value.isEmpty || header.contains("Max-Age=0") { self.cookies[name] = nil } else { self.cookies[name] = value }
            }
        }

        var header: String { self.cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
    }

    static func csrf(in html: String) throws -> String {
        let marker = "name=\"csrf\" value=\""
        let start = try #require(html.range(of: marker)).upperBound
        return String(html[start...].prefix { $0 != "\"" })
    }

    static func form(_ fields: [String: String]) -> ByteBuffer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        return ByteBuffer(string: body)
    }

    /// GET with the jar's cookies; the jar takes what the answer sets.
    static func get(_ client: some TestClientProtocol, _ uri: String, _ jar: inout Jar) async throws -> TestResponse {
        let response = try await client.execute(uri: uri, method: .get, headers: jar.cookies.isEmpty ? [:] : [.cookie: jar.header], body: nil)
        jar.take(response)
        return response
    }

    static func post(
        _ client: some TestClientProtocol, _ uri: String, _ fields: [String: String], _ jar: inout Jar, headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if !jar.cookies.isEmpty { headers[.cookie] = jar.header }
        headers.append(contentsOf: extra)
        let response = try await client.execute(uri: uri, method: .post, headers: headers, body: Self.form(fields))
        jar.take(response)
        return response
    }

    /// Signs in through the login form as a browser does; returns the jar and the account page's CSRF token.
    static func signIn(_ client: some TestClientProtocol, _ email: String = "ann@example.org", device: String = "") async throws -> (Jar, String) {
        var jar = Jar()
        let page = try await Self.get(client, "/login", &jar)
        let token = try Self.csrf(in: String(buffer: page.body))
        let response = try await Self.post(client, "/login", ["csrf": token, "email": email, "password": "correct horse", "deviceName": device], &jar)
        guard response.status == .seeOther, response.headers[.location] == "/account" else {
            throw TestFailure("sign-in by form: \(response.status) \(String(buffer: response.body))")
        }
        let account = try await Self.get(client, "/account", &jar)
        return (jar, try Self.csrf(in: String(buffer: account.body)))
    }

    @Test func theLoginPageIsFramedByNoOneAndRunsOnlyTesserasScript() async throws {
        try await TestApp.run { client in
            var jar = Jar()
            let page = try await Self.get(client, "/login", &jar)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.headers[.cacheControl] == "no-store")
            #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(page.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
            #expect(jar.cookies["tessera_csrf"] != nil)
            let css = try await client.call(.get, "/static/tessera.css")
            #expect(css.status == .ok && css.headers[.contentType] == "text/css; charset=utf-8")
            #expect(try await client.call(.get, "/static/nothing.js").status == .notFound)
        }
    }

    /// Stops session theft by script (httpOnly) and cross-site sends (SameSite=Lax); production adds Secure.
    @Test(arguments: [Configuration.Mode.development, .production])
    func sessionCookiesAreHttpOnlyLaxAndSecureInProduction(mode: Configuration.Mode) async throws {
        try await TestApp.run({ $0.mode = mode }) { client in
            try await client.register()
            var jar = Jar()
            let page = try await Self.get(client, "/login", &jar)
            let response = try await Self.post(
                client, "/login", ["csrf": try Self.csrf(in: String(buffer: page.body)), "email": "ann@example.org", "password": "correct horse"], &jar
            )
            #expect(response.status == .seeOther)
            let cookies = response.headers[values: .setCookie]
            #expect(cookies.count == 3)
            for cookie in cookies where !cookie.hasPrefix("tessera_device=") {
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"))
                #expect(cookie.contains("Secure") == (mode == .production))
            }
            // The device cookie (exempts this browser from the sign-in limits others can drive up) goes to /login only.
            let device = try #require(cookies.first { $0.hasPrefix("tessera_device=") })
            #expect(device.contains("HttpOnly") && device.contains("SameSite=Strict") && device.contains("Path=/login"))
            #expect(device.contains("Secure") == (mode == .production))
        }
    }

    /// Stops login CSRF and forged sign-outs: a post without this browser's token changes nothing.
    @Test func formPostsWithoutTheCSRFTokenAreRefused() async throws {
        try await TestApp.run { client in
            try await client.register()
            var anonymous = Jar()
            _ = try await Self.get(client, "/login", &anonymous)
            let login = try await Self.post(client, "/login", ["email": "ann@example.org", "password": "correct horse"], &anonymous)
            #expect(login.status == .forbidden)
            #expect(anonymous.cookies["tessera_access"] == nil)

            let apiToken = try #require(try await client.login().string("accessToken"))
            var (jar, _) = try await Self.signIn(client)
            for path in ["/logout", "/logout-all", "/account/logout-others"] {
                let forged = try await Self.post(client, path, ["x": "1"], &jar, headers: [BrowserSession.fetchHeader: "1"])
                #expect(forged.status == .forbidden, "\(path)")
                #expect(try JSONBody(forged).string("code") == "csrf_failed")
            }
            #expect(try await client.ping(apiToken) == .ok)
            #expect(try await Self.get(client, "/account", &jar).status == .ok)
        }
    }

    /// Stops a token lifted from one session (or a page on another origin) from working for another.
    @Test func aTokenOfAnotherSessionOrAPostFromAnotherOriginIsRefused() async throws {
        try await TestApp.run { client in
            try await client.register()
            var (jar, token) = try await Self.signIn(client)
            let (_, otherToken) = try await Self.signIn(client)
            #expect(token != otherToken)
            #expect(try await Self.post(client, "/logout", ["csrf": otherToken], &jar).status == .forbidden)
            let crossOrigin = try await Self.post(client, "/logout", ["csrf": token], &jar, headers: [.origin: "http://evil.example"])
            #expect(crossOrigin.status == .forbidden)
            let crossSite = try await Self.post(client, "/logout", ["csrf": token], &jar, headers: [.init("Sec-Fetch-Site")!: "cross-site"])
            #expect(crossSite.status == .forbidden)
            // With its own token, from its own page, the same post signs out.
            let logout = try await Self.post(client, "/logout", ["csrf": token], &jar)
            #expect(logout.status == .seeOther && logout.headers[.location] == "/login?m=signed-out")
            #expect(jar.cookies["tessera_access"] == nil && jar.cookies["tessera_refresh"] == nil)
        }
    }

    @Test func aRevokedBrowserLandsOnLoginAndForgetsItsCookies() async throws {
        try await TestApp.run { client in
            try await client.register()
            var (phone, _) = try await Self.signIn(client, device: "phone")
            let apiToken = try #require(try await client.login().string("accessToken"))
            #expect(try await client.call(.post, "/api/auth/logout-all", token: apiToken).status == .noContent)

            var fetchJar = phone
            let fetch = try await client.execute(
                uri: "/account/logout-others", method: .post,
                headers: [.cookie: fetchJar.header, .contentType: "application/x-www-form-urlencoded", BrowserSession.fetchHeader: "1"], body: nil
            )
            fetchJar.take(fetch)
            #expect(fetch.status == .unauthorized)
            #expect(try JSONBody(fetch).string("redirect") == "/login?m=revoked")

            let page = try await Self.get(client, "/account", &phone)
            #expect(page.status == .seeOther)
            #expect(page.headers[.location] == "/login?m=revoked")
            #expect(phone.cookies["tessera_access"] == nil && phone.cookies["tessera_refresh"] == nil)
            let login = try await Self.get(client, "/login?m=revoked", &phone)
            #expect(String(buffer: login.body).contains("You were signed out."))
            // Without any cookie the page just asks for a sign-in, with no message.
            var stranger = Jar()
            #expect(try await Self.get(client, "/account", &stranger).headers[.location] == "/login")
        }
    }

    /// Two tabs that both find their access cookie expired send the same refresh cookie at once; that is not a replay.
    @Test func concurrentSilentRefreshesWithOneCookieKeepTheSession() async throws {
        try await TestApp.run { client in
            try await client.register()
            var (jar, _) = try await Self.signIn(client)
            jar.cookies["tessera_access"] = nil
            let cookie = jar.header
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let response = try await client.execute(uri: "/account", method: .get, headers: [.cookie: cookie], body: nil)
                        var jar = Jar()
                        jar.take(response)
                        return (response.status, jar.cookies["tessera_access"])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.map(\.0) == [.ok, .ok])
            let access = try #require(statuses.first?.1)
            #expect(try await client.ping(access) == .ok, "the session was not taken for a stolen refresh token")
        }
    }

    /// Attack stopped: a stolen refresh cookie replayed from another client inside the coalescing grace, which used to
    /// be handed the victim's fresh pair. Only the same client (same cookie, same user agent) shares the refresh; a
    /// replay from elsewhere is reuse: the session is revoked for both, and audited.
    @Test func aRefreshCookieReplayedFromAnotherClientWithinTheGraceRevokesTheSession() async throws {
        try await TestApp.run { client in
            try await client.register()
            var (jar, _) = try await Self.signIn(client)
            jar.cookies["tessera_access"] = nil
            let cookie = jar.header
            let owner = try await client.execute(
                uri: "/account", method: .get, headers: [.cookie: cookie, .userAgent: "Mozilla/5.0 (owner's laptop)"], body: nil
            )
            #expect(owner.status == .ok)
            var ownerJar = Jar()
            ownerJar.take(owner)
            let ownerAccess = try #require(ownerJar.cookies["tessera_access"])
            #expect(try await client.ping(ownerAccess) == .ok)

            let thief = try await client.execute(uri: "/account", method: .get, headers: [.cookie: cookie, .userAgent: "curl/8.0"], body: nil)
            var thiefJar = Jar()
            thiefJar.take(thief)
            #expect(thiefJar.cookies["tessera_access"] == nil, "the replay got a fresh pair")
            #expect(thief.status == .seeOther)
            #expect(try await client.ping(ownerAccess) == .unauthorized, "the session of a replayed refresh token must end")
        }
    }

    /// Stops stored cross-site scripting: what a user types is shown as text.
    @Test func aDeviceNameIsEscapedOnTheAccountPage() async throws {
        try await TestApp.run { client in
            try await client.register()
            var (jar, _) = try await Self.signIn(client, device: "<script>alert(1)</script>")
            let page = String(buffer: try await Self.get(client, "/account", &jar).body)
            #expect(!page.contains("<script>alert(1)</script>"))
            #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        }
    }

    /// The pages' flows log at trace level without a password, a cookie's token or a CSRF token.
    @Test func pageFlowsLogNoSecret() async throws {
        let capture = LogCapture()
        try await TestApp.run(logger: capture.logger, { $0.logLevel = .trace }) { client in
            try await client.register()
            var (jar, csrf) = try await Self.signIn(client)
            var seen = jar.cookies.filter { $0.key != "tessera_csrf" }.map(\.value) + [csrf]
            jar.cookies["tessera_access"] = nil
            _ = try await Self.get(client, "/account", &jar)  // a silent refresh
            seen += jar.cookies.filter { $0.key != "tessera_csrf" }.map(\.value)
            let wrong = try await Self.post(
                client, "/account/password", ["csrf": csrf, "currentPassword": "not my password", "newPassword": "brand new password", "confirmPassword": "brand new password"], &jar
            )
            #expect(wrong.status != .seeOther)
            _ = try await Self.post(client, "/logout-all", ["x": "1"], &jar)  // refused: no token
            for secret in seen + ["correct horse", "not my password", "brand new password", TestApp.secret] {
                #expect(!capture.text.contains(secret))
            }
        }
        #expect(capture.text.contains("CSRF"), "the refusal was logged, without the token")
    }

    @Test func closedRegistrationClosesThePageAndTheAPI() async throws {
        try await TestApp.run({ $0.registrationOpen = false }) { client in
            let api = try await client.postJSON("/api/auth/register", ["email": "ann@example.org", "password": "correct horse"])
            #expect(api.status == .forbidden)
            #expect(try JSONBody(api).string("code") == "registration_closed")
            var jar = Jar()
            #expect(try await Self.get(client, "/register", &jar).status == .forbidden)
            #expect(!String(buffer: try await Self.get(client, "/login", &jar).body).contains("/register"))
        }
        #expect(try Configuration.fromEnvironment(["TESSERA_REGISTRATION": "closed"]).registrationOpen == false)
        #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment(["TESSERA_REGISTRATION": "sometimes"]) }
    }

    @Test func theAdminConsoleIsForAdminsOnly() async throws {
        try await TestApp.run(admins: ["root@example.org"]) { client in
            try await client.register()
            var (user, _) = try await Self.signIn(client)
            #expect(try await Self.get(client, "/admin", &user).status == .forbidden)
            var admin = Jar()
            let page = try await Self.get(client, "/login", &admin)
            _ = try await Self.post(
                client, "/login", ["csrf": try Self.csrf(in: String(buffer: page.body)), "email": "root@example.org", "password": "admin password"], &admin
            )
            let console = try await Self.get(client, "/admin?q=ann", &admin)
            #expect(console.status == .ok)
            let html = String(buffer: console.body)
            #expect(html.contains("data-email=\"ann@example.org\""))
            #expect(!html.contains("data-email=\"root@example.org\""), "the search narrowed the list")
            #expect(html.contains("AUTH_LOGIN"), "the audit log is on the page")
        }
    }
}
