import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TesseraCore
import TesseraStore

@testable import TesseraServer

/// Personal API tokens through the real router: made, used on bearer routes, listed, revoked, and cut with the rest
/// of a user's tokens by every cut except "sign out of this device".
@Suite struct APITokenTests {
    static let admin = "root@example.org"

    func create(_ client: some TestClientProtocol, access: String, name: String = "ci") async throws -> (token: String, id: String) {
        let response = try await client.postJSON("/api/tokens", ["name": name], token: access)
        #expect(response.status == .created)
        #expect(response.headers[.cacheControl] == "no-store")
        let body = try JSONBody(response)
        return (try #require(body.string("token")), try #require(body.string("id")))
    }

    @Test func aTokenIsShownOnceWorksOnBearerRoutesIsListedAndRevoked() async throws {
        try await TestApp.run(admins: []) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let (token, id) = try await self.create(client, access: access)
            #expect(APIToken.isWellFormed(token))
            #expect(token.hasPrefix("tsr_") && token.utf8.count == APIToken.length)
            #expect(try await client.ping(token) == .ok)
            #expect(try await client.call(.get, "/api/me", token: token).status == .ok)

            let listed = try await client.call(.get, "/api/tokens", token: access)
            #expect(listed.status == .ok)
            #expect(!String(buffer: listed.body).contains(token))
            let tokens = try #require(try JSONBody(listed)["tokens"] as? [[String: Any]])
            #expect(tokens.count == 1)
            #expect(tokens.first?["id"] as? String == id)
            #expect(tokens.first?["active"] as? Bool == true)
            #expect(tokens.first?["invalidatedAt"] is NSNull)

            // A leaked API token cannot mint more, nor act on a session it does not have.
            #expect(try await client.postJSON("/api/tokens", ["name": "more"], token: token).status == .forbidden)
            #expect(try await client.call(.post, "/api/auth/logout", token: token).status == .forbidden)
            #expect(try await client.call(.post, "/api/auth/logout-others", token: token).status == .forbidden)
            #expect(try await client.postJSON("/api/me/password", ["currentPassword": "correct horse", "newPassword": "x battery staple"], token: token).status == .forbidden)
            #expect(try await client.ping(token) == .ok)

            #expect(try await client.call(.delete, "/api/tokens/\(id)", token: access).status == .noContent)
            let refused = try await client.call(.get, "/api/v1/ping-auth", token: token)
            #expect(refused.status == .unauthorized)
            #expect(try JSONBody(refused).string("code") == "token_revoked")
            // Revoked once: a second revoke finds nothing to revoke, and the row stays, marked, for the audit trail.
            #expect(try await client.call(.delete, "/api/tokens/\(id)", token: access).status == .notFound)
            let after = try #require(try JSONBody(try await client.call(.get, "/api/tokens", token: access))["tokens"] as? [[String: Any]])
            #expect(after.first?["active"] as? Bool == false)
            #expect(after.first?["invalidatedAt"] as? String != nil)
        }
    }

    @Test func oneUserCannotSeeOrRevokeAnothersTokens() async throws {
        try await TestApp.run(admins: []) { client in
            try await client.register()
            try await client.register("bob@example.org")
            let ann = try #require(try await client.login().string("accessToken"))
            let bob = try #require(try await client.login("bob@example.org").string("accessToken"))
            let (token, id) = try await self.create(client, access: ann)
            #expect(try await client.call(.delete, "/api/tokens/\(id)", token: bob).status == .notFound)
            let listed = try #require(try JSONBody(try await client.call(.get, "/api/tokens", token: bob))["tokens"] as? [[String: Any]])
            #expect(listed.isEmpty)
            #expect(try await client.ping(token) == .ok)
        }
    }

    @Test(arguments: [
        ("", 400), (String(repeating: "n", count: 101), 400), ("tab\there", 400),
    ])
    func aBadNameIsRefused(_ name: String, _ status: Int) async throws {
        try await TestApp.run(admins: []) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let response = try await client.postJSON("/api/tokens", ["name": name], token: access)
            #expect(response.status.code == status)
            #expect(try await client.postJSON("/api/tokens", ["name": "x", "expiresInDays": 0], token: access).status == .badRequest)
            #expect(try await client.postJSON("/api/tokens", ["name": "x", "expiresInDays": 366], token: access).status == .badRequest)
        }
    }

    /// Property: no change of a single character of a real token, and no token of the right shape with a random
    /// checksum, is ever accepted.
    @Test func noAlteredOrMadeUpTokenIsAccepted() async throws {
        try await TestApp.run(admins: []) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let (token, _) = try await self.create(client, access: access)
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<150 {
                var characters = Array(token)
                let position = Int.random(in: 4..<characters.count, using: &generator)
                var replacement = alphabet.randomElement(using: &generator)!
                while replacement == characters[position] { replacement = alphabet.randomElement(using: &generator)! }
                characters[position] = replacement
                let altered = String(characters)
                #expect(!APIToken.isWellFormed(altered), "\(position)")
                #expect(try await client.ping(altered) == .unauthorized)
            }
            for _ in 0..<50 {
                let madeUp = "tsr_" + String((0..<51).map { _ in alphabet.randomElement(using: &generator)! })
                #expect(try await client.ping(madeUp) == .unauthorized)
            }
            // Well-formed (checksum right) but never made: refused, and remembered as unknown.
            let unknown = APIToken.generate()
            #expect(try await client.ping(unknown) == .unauthorized)
            #expect(try await client.ping(unknown) == .unauthorized)
            #expect(try await client.ping(token) == .ok)
        }
    }

    @Test func signingOutOfThisDeviceKeepsTheTokenAndSigningOutEverywhereEndsIt() async throws {
        try await TestApp.run(admins: []) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let (token, _) = try await self.create(client, access: access)
            #expect(try await client.call(.post, "/api/auth/logout", token: access).status == .noContent)
            #expect(try await client.ping(token) == .ok)
            let other = try #require(try await client.login().string("accessToken"))
            #expect(try await client.call(.post, "/api/auth/logout-all", token: other).status == .noContent)
            #expect(try await client.ping(token) == .unauthorized)
        }
    }

    @Test func aPasswordChangeAnAdminRevokeARevokeAllAndDeactivationEachEndTheTokens() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let userId = try #require((pair["user"] as? [String: Any])?["id"] as? String)
            var access = try #require(pair.string("accessToken"))

            var (token, _) = try await self.create(client, access: access)
            let changed = try await client.postJSON("/api/me/password", ["currentPassword": "correct horse", "newPassword": "battery staple"], token: access)
            #expect(changed.status == .ok || changed.status == .noContent)
            #expect(try await client.ping(token) == .unauthorized)

            access = try #require(try await client.login(password: "battery staple").string("accessToken"))
            (token, _) = try await self.create(client, access: access)
            var admin = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            #expect(try await client.postJSON("/api/admin/revoke", ["userIds": [userId]], token: admin).status == .ok)
            #expect(try await client.ping(token) == .unauthorized)

            access = try #require(try await client.login(password: "battery staple").string("accessToken"))
            (token, _) = try await self.create(client, access: access)
            #expect(try await client.postJSON("/api/admin/revoke-all", [:], token: admin).status == .ok)
            #expect(try await client.ping(token) == .unauthorized)

            access = try #require(try await client.login(password: "battery staple").string("accessToken"))
            (token, _) = try await self.create(client, access: access)
            admin = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            #expect(try await client.postJSON("/api/admin/users/\(userId)/deactivate", [:], token: admin).status == .ok)
            #expect(try await client.ping(token) == .unauthorized)
        }
    }

    @Test func explainSaysWhyAnAPITokenIsRefused() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let (token, id) = try await self.create(client, access: access)
            let admin = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            let accepted = try JSONBody(try await client.postJSON("/api/admin/explain", ["token": token], token: admin))
            #expect(accepted["accepted"] as? Bool == true)
            #expect(accepted.string("tokenType") == "api_token")
            #expect(try await client.call(.delete, "/api/tokens/\(id)", token: access).status == .noContent)
            let refused = try await client.postJSON("/api/admin/explain", ["token": token], token: admin)
            #expect(!String(buffer: refused.body).contains(token))
            let body = try JSONBody(refused)
            #expect(body.string("reason") == "revoked")
            let cut = try #require((body["cuts"] as? [[String: Any]])?.first)
            #expect(cut["kind"] as? String == "token")
            #expect(cut["auditEvent"] as? String == "API_TOKEN_REVOKED")
        }
    }

    @Test func rfc7662IntrospectsAndRfc7009RevokesAPITokens() async throws {
        let clients = Clients()
        try await TestApp.run(seed: { services in
            let (introspector, secret) = ClientRegistry.newClient(name: "introspector", permissions: [.introspect, .revoke], now: Date())
            try await services.store.addClient(introspector, audit: AuditRecord(at: Date(), event: .clientAdded, origin: .commandLine, details: [:]))
            clients.set((RevocationFeedRoutesTests.Client(id: introspector.id, secret: secret), RevocationFeedRoutesTests.Client(id: "", secret: "")))
        }) { client in
            let (introspector, _) = try clients.get()
            try await client.register()
            let access = try #require(try await client.login().string("accessToken"))
            let (token, id) = try await self.create(client, access: access)
            func post(_ path: String) async throws -> TestResponse {
                try await client.execute(
                    uri: path, method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded", .authorization: introspector.basic],
                    body: ByteBuffer(string: "token=\(token)")
                )
            }
            let active = try JSONBody(try await post("/oauth/introspect"))
            #expect(active["active"] as? Bool == true)
            #expect(active.string("token_use") == "api_token")
            #expect(active.string("jti") == id)
            #expect(active.string("username") == "ann@example.org")
            #expect(try await post("/oauth/revoke").status == .ok)
            #expect(try await client.ping(token) == .unauthorized)
            let inactive = try await post("/oauth/introspect")
            #expect(String(buffer: inactive.body) == #"{"active":false}"#)
        }
    }
}
