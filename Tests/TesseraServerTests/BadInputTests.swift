import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TesseraCore

@testable import TesseraServer

/// Every kind of bad input gets a clear problem+json with the right status, and nothing crashes.
@Suite struct BadInputTests {
    func expectProblem(_ response: TestResponse, _ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        let body = try JSONBody(response)
        #expect(body.string("code") == code, sourceLocation: sourceLocation)
        #expect(body["status"] as? Int == Int(status.code), sourceLocation: sourceLocation)
        #expect(body.string("title") != nil && body.string("detail") != nil && body.string("type") != nil, sourceLocation: sourceLocation)
    }

    func post(_ client: some TestClientProtocol, _ uri: String, raw: String, contentType: String = "application/json") async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: contentType], body: ByteBuffer(string: raw))
    }

    @Test(arguments: [
        "{", "not json", "[]", "{\"email\": 42, \"password\": \"x\"}", "{\"email\": \"a@x.org\"}", "{\"email\": null, \"password\": \"pw\"}", "",
    ])
    func malformedOrIncompleteBodiesAre400(body: String) async throws {
        try await TestApp.run { client in
            try self.expectProblem(try await self.post(client, "/api/auth/login", raw: body), .badRequest, "invalid_body")
        }
    }

    @Test func aMissingFieldIsNamed() async throws {
        try await TestApp.run { client in
            let response = try await self.post(client, "/api/auth/register", raw: "{\"email\": \"a@x.org\"}")
            #expect(try JSONBody(response).string("detail")?.contains("'password'") == true)
        }
    }

    @Test func aFormBodyIs415() async throws {
        try await TestApp.run { client in
            let response = try await self.post(client, "/api/auth/login", raw: "email=a&password=b", contentType: "application/x-www-form-urlencoded")
            try self.expectProblem(response, .unsupportedMediaType, "unsupported_media_type")
        }
    }

    @Test func aBodyOver64KiBIs413AndCreatesNothing() async throws {
        try await TestApp.run { client in
            let huge = "{\"email\": \"big@x.org\", \"password\": \"" + String(repeating: "x", count: 70 * 1024) + "\"}"
            try self.expectProblem(try await self.post(client, "/api/auth/register", raw: huge), .contentTooLarge, "payload_too_large")
            let login = try await client.postJSON("/api/auth/register", ["email": "big@x.org", "password": "fine password"])
            #expect(login.status == .created)
        }
    }

    @Test func anUnknownRouteIs404() async throws {
        try await TestApp.run { client in
            try self.expectProblem(try await client.call(.get, "/api/nothing-here"), .notFound, "not_found")
        }
    }

    @Test(arguments: [
        (HTTPRequest.Method.get, "/api/auth/login"), (.delete, "/api/auth/logout"), (.put, "/api/me"), (.post, "/health"),
        (.get, "/api/auth/sessions/8b0ac0f0-0000-4000-8000-000000000000"),
    ])
    func anUnsupportedMethodOnAKnownPathIs405WithAllow(method: HTTPRequest.Method, path: String) async throws {
        try await TestApp.run { client in
            let response = try await client.call(method, path)
            try self.expectProblem(response, .methodNotAllowed, "method_not_allowed")
            #expect(response.headers[.allow] != nil)
        }
    }

    @Test(arguments: [
        "", "Bearer", "Bearer ", "Basic YTpi", "bearer a.b.c", "Bearer a.b", "Bearer \u{7f}abc", "Token abc", "Bearer a b",
        "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer " + String(repeating: "A", count: 10_000),
        "Bearer " + String(repeating: "a", count: 3000) + "." + String(repeating: "b", count: 3000) + ".c",
    ])
    func garbageAuthorizationIs401WithTheBearerChallenge(header: String) async throws {
        try await TestApp.run { client in
            let response = try await client.execute(uri: "/api/v1/ping-auth", method: .get, headers: [.authorization: header], body: nil)
            #expect(response.status == .unauthorized)
            // RFC 6750 §3.1: no bearer credentials at all (empty, another scheme) get no error code.
            let sentABearerToken = header.lowercased().hasPrefix("bearer")
            let challenge = response.headers[.wwwAuthenticate] ?? ""
            #expect(challenge.hasPrefix(sentABearerToken ? "Bearer realm=\"tessera\", error=\"invalid_token\"" : "Bearer realm=\"tessera\""))
            #expect(challenge.contains("error=") == sentABearerToken, "\(header.prefix(40))")
            #expect(try JSONBody(response).string("code") == "invalid_token")
        }
    }

    @Test func twoAuthorizationHeadersAre401() async throws {
        try await TestApp.run { client in
            try await client.register()
            let token = try #require(try await client.login().string("accessToken"))
            var headers = HTTPFields()
            headers.append(HTTPField(name: .authorization, value: "Bearer \(token)"))
            headers.append(HTTPField(name: .authorization, value: "Bearer \(token)"))
            let response = try await client.execute(uri: "/api/v1/ping-auth", method: .get, headers: headers, body: nil)
            #expect(response.status == .unauthorized)
        }
    }

    @Test func aTokenSignedWithAnotherSecretIs401() async throws {
        // Attack: a token minted by another deployment (or a guessed key).
        let key = try await SigningKey(secret: "some-other-deployments-secret-0123456789")
        let user = User(id: UUID(), email: "x@x.org", role: .admin, isActive: true, createdAt: Date())
        let session = Session(
            id: UUID(), userId: user.id, createdAt: Date(), lastSeenAt: Date(), expiresAt: Date(), ip: nil, userAgent: nil, deviceName: nil,
            terminalId: nil, tokenVersion: 0, epoch: 0
        )
        let (forged, _) = try await AccessTokenSigner(key: key, settings: TokenSettings()).sign(user: user, session: session, now: Date())
        try await TestApp.run { client in
            let status = try await client.ping(forged)
            #expect(status == .unauthorized)
        }
    }
}
