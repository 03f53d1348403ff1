import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import TesseraServer

/// Every answer carries `X-Request-Id`, the client's own when well-formed: the id an operator is handed by a user is
/// the one in the server's logs.
@Suite struct RequestIdTests {
    static let header = HTTPField.Name("X-Request-Id")!

    @Test func everyAnswerCarriesAnIdIncludingErrors() async throws {
        try await TestApp.run { client in
            var seen = Set<String>()
            for (method, uri) in [(HTTPRequest.Method.get, "/health"), (.get, "/no-such-route"), (.get, "/api/auth/me"), (.post, "/api/auth/login")] {
                let response = try await client.execute(uri: uri, method: method, headers: [:], body: nil)
                let id = try #require(response.headers[Self.header], "\(method) \(uri)")
                #expect(id.count == 36 && RequestIdMiddleware<TesseraRequestContext>.isWellFormed(id))
                seen.insert(id)
            }
            #expect(seen.count == 4, "ids repeat")
        }
    }

    @Test func aWellFormedIdIsKeptAndAnyOtherReplaced() async throws {
        try await TestApp.run { client in
            let kept = try await client.execute(uri: "/health", method: .get, headers: [Self.header: "edge-7f3a:42.b_1"], body: nil)
            #expect(kept.headers[Self.header] == "edge-7f3a:42.b_1")
            // Attack: an id that would forge a log line, carry markup, or flood the logs.
            for forged in ["a b", "x\u{7F}y", "<script>", String(repeating: "a", count: 129), "é"] {
                let response = try await client.execute(uri: "/health", method: .get, headers: [Self.header: forged], body: nil)
                let id = try #require(response.headers[Self.header])
                #expect(id != forged && id.count == 36, "\(forged.prefix(20))")
            }
        }
    }
}
