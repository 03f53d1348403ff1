import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import TesseraServer

/// RFC 9110 methods and RFC 6750 challenges, as a client or a scanner meets them.
@Suite struct HTTPSemanticsTests {
    @Test func headIsAnsweredWhereverGetIsWithoutABody() async throws {
        try await TestApp.run { client in
            try await client.register()
            let token = try await client.login().string("accessToken")
            for (path, bearer) in [("/health", nil), ("/ready", nil), ("/api/v1/ping-auth", token), ("/api/me", token), ("/login", nil)] {
                let get = try await client.call(.get, path, token: bearer)
                let head = try await client.call(.head, path, token: bearer)
                #expect(head.status == get.status, "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
            }
        }
    }

    /// Attack stopped: cross-site tracing and method confusion — TRACE, CONNECT, WebDAV methods and methods a path
    /// does not serve get 405 with `Allow`, as problem+json, never a handler and never a 500.
    @Test(arguments: ["TRACE", "PUT", "PATCH", "DELETE", "PROPFIND", "CONNECT"])
    func aMethodAPathDoesNotServeIsAnswered405WithAllow(method: String) async throws {
        try await TestApp.run { client in
            let response = try await client.execute(uri: "/api/auth/login", method: HTTPRequest.Method(method)!, headers: [:], body: nil)
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers[.allow] == "OPTIONS, POST")
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(try JSONBody(response).string("code") == "method_not_allowed")
        }
    }

    @Test func optionsAnswersAllowForEveryKnownPath() async throws {
        try await TestApp.run { client in
            let ping = try await client.call(.options, "/api/v1/ping-auth")
            #expect(ping.status == .noContent)
            #expect(ping.headers[.allow] == "GET, HEAD, OPTIONS")
            let action = try await client.call(.options, "/api/admin/users/\(UUID())/deactivate")
            #expect(action.headers[.allow] == "OPTIONS, POST")
            #expect(try await client.call(.options, "/nowhere").status == .notFound)
        }
    }

    @Test func aMethodOutsideTheStandardOnesOnAnUnknownPathIs501() async throws {
        try await TestApp.run { client in
            let response = try await client.execute(uri: "/nowhere", method: HTTPRequest.Method("PURGE")!, headers: [:], body: nil)
            #expect(response.status == .notImplemented)
            #expect(try JSONBody(response).string("code") == "method_not_implemented")
        }
    }

    /// RFC 6750 §3.1: no credentials (or another scheme) get a challenge without an error code; a bearer token that
    /// was sent and refused gets `error="invalid_token"`.
    @Test func theChallengeSaysWhetherATokenWasSent() async throws {
        try await TestApp.run { client in
            let none = try await client.call(.get, "/api/v1/ping-auth")
            #expect(none.status == .unauthorized)
            #expect(none.headers[.wwwAuthenticate] == #"Bearer realm="tessera""#)
            let basic = try await client.execute(uri: "/api/v1/ping-auth", method: .get, headers: [.authorization: "Basic YTpi"], body: nil)
            #expect(basic.headers[.wwwAuthenticate] == #"Bearer realm="tessera""#)
            for header in ["Bearer", "Bearer a b", "Bearer not.a.token", "bearer \u{7F}"] {
                let refused = try await client.execute(uri: "/api/v1/ping-auth", method: .get, headers: [.authorization: header], body: nil)
                #expect(refused.status == .unauthorized)
                #expect(refused.headers[.wwwAuthenticate]?.hasPrefix(#"Bearer realm="tessera", error="invalid_token""#) == true, "\(header)")
            }
        }
    }
}
