import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TesseraCore

@testable import TesseraServer

/// Role changes and account deletion through the routes: tokens in use are refused at once, the last admin stays,
/// and a deleted account leaves no address behind while its audit rows stay.
@Suite struct AccountLifecycleTests {
    static let admin = "root@example.org"

    func adminToken(_ client: some TestClientProtocol, _ email: String = Self.admin) async throws -> String {
        try #require(try await client.login(email, password: "admin password").string("accessToken"))
    }

    func userId(_ pair: JSONBody) throws -> String {
        try #require((pair["user"] as? [String: Any])?["id"] as? String)
    }

    func role(_ client: some TestClientProtocol, _ id: String, _ role: String, token: String) async throws -> TestResponse {
        try await client.postJSON("/api/admin/users/\(id)/role", ["role": role], token: token)
    }

    func deleteMe(_ client: some TestClientProtocol, password: String, token: String?, userAgent: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let userAgent { headers[.userAgent] = userAgent }
        let body = try JSONSerialization.data(withJSONObject: ["password": password])
        return try await client.execute(uri: "/api/me", method: .delete, headers: headers, body: ByteBuffer(bytes: body))
    }

    func code(_ response: TestResponse) throws -> String? { try JSONBody(response).string("code") }

    func events(_ client: some TestClientProtocol, _ query: String, token: String) async throws -> [[String: Any]] {
        try #require(try JSONBody(try await client.call(.get, "/api/admin/audit?\(query)", token: token))["events"] as? [[String: Any]])
    }

    /// The `role` claim of an access token (its payload, read without checking: the server checked it).
    func roleClaim(_ token: String) throws -> String? {
        let payload = try #require(token.split(separator: ".").dropFirst().first)
        let data = try #require(Base64URL.decode(payload))
        return try #require(JSONSerialization.jsonObject(with: Data(data)) as? [String: Any])["role"] as? String
    }

    /// Attack stopped: a token that keeps a role its holder lost (or never had). Tokens in use are refused on the next
    /// request, the refresh token too, and only a new sign-in carries the new role.
    @Test func aRoleChangeRevokesTheTokensInUseAtOnceAndTheNextTokenCarriesTheNewRole() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let before = try await client.login()
            let id = try self.userId(before)
            let userToken = try #require(before.string("accessToken"))
            let admin = try await self.adminToken(client)
            #expect(try await client.call(.get, "/api/admin/users", token: userToken).status == .forbidden)
            let created = try await client.postJSON("/api/tokens", ["name": "deploy script"], token: userToken)
            #expect(created.status == .created)
            let apiToken = try #require(try JSONBody(created).string("token"))

            let promoted = try await self.role(client, id, "admin", token: admin)
            #expect(promoted.status == .ok)
            #expect((try JSONBody(promoted)["user"] as? [String: Any])?["role"] as? String == "admin")
            let refused = try await client.call(.get, "/api/v1/ping-auth", token: userToken)
            #expect(refused.status == .unauthorized)
            #expect(try self.code(refused) == "token_revoked")
            #expect(try await client.ping(apiToken) == .unauthorized, "an API token carries the role it was made with: cut too")
            let refresh = try await client.postJSON("/api/auth/refresh", ["refreshToken": try #require(before.string("refreshToken"))])
            #expect(refresh.status == .unauthorized)

            let after = try await client.login()
            let adminNow = try #require(after.string("accessToken"))
            #expect(try self.roleClaim(adminNow) == "admin")
            #expect(try await client.call(.get, "/api/admin/users", token: adminNow).status == .ok)

            // Demoted again: the admin token it holds now stops at once, on the admin routes and everywhere else.
            #expect(try await self.role(client, id, "user", token: admin).status == .ok)
            #expect(try await client.call(.get, "/api/admin/users", token: adminNow).status == .unauthorized)
            #expect(try await client.ping(adminNow) == .unauthorized)
            #expect(try self.roleClaim(try #require(try await client.login().string("accessToken"))) == "user")

            let audit = try await self.events(client, "event=ROLE_CHANGED&userId=\(id)", token: admin)
            #expect(audit.count == 2)
            #expect(audit.map { $0["details"] as? [String: String] } == [["from": "admin", "to": "user"], ["from": "user", "to": "admin"]])
            #expect(audit.allSatisfy { $0["subjectId"] as? String == id && $0["actorId"] as? String != nil })
            // Final: no operator's undo brings the admin token back.
            let undo = try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: admin)
            #expect(undo.status == .conflict)
            #expect(try self.code(undo) == "cut_is_final")
            #expect(try await client.ping(adminNow) == .unauthorized)
        }
    }

    @Test func theSameRoleAgainIsANoOpThatRevokesNothing() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let admin = try await self.adminToken(client)
            let same = try await self.role(client, try self.userId(pair), "user", token: admin)
            #expect(same.status == .ok)
            #expect((try JSONBody(same)["user"] as? [String: Any])?["role"] as? String == "user")
            #expect(try await client.ping(pair.string("accessToken")) == .ok)
            #expect(try await client.ping(admin) == .ok)
            #expect(try await self.events(client, "event=ROLE_CHANGED", token: admin).isEmpty)
        }
    }

    @Test func aRoleChangeRefusesUnknownRolesUnknownAccountsAndDeletedOnes() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let id = try self.userId(pair)
            let admin = try await self.adminToken(client)
            for role in ["root", "Admin", ""] {
                let response = try await self.role(client, id, role, token: admin)
                #expect(response.status == .badRequest, "\(role)")
                #expect(try self.code(response) == "invalid_request")
            }
            #expect(try await client.postJSON("/api/admin/users/\(id)/role", ["role": 1], token: admin).status == .badRequest)
            #expect(try await client.postJSON("/api/admin/users/\(id)/role", [:], token: admin).status == .badRequest)
            #expect(try await client.ping(pair.string("accessToken")) == .ok, "a refused change revokes nothing")
            #expect(try await self.role(client, UUID().uuidString, "admin", token: admin).status == .notFound)
            #expect(try await self.role(client, "not-an-id", "admin", token: admin).status == .notFound)
            let user = try await client.login()
            #expect(try await self.role(client, id, "admin", token: try #require(user.string("accessToken"))).status == .forbidden)

            #expect(try await client.call(.delete, "/api/admin/users/\(id)", token: admin).status == .noContent)
            let deleted = try await self.role(client, id, "admin", token: admin)
            #expect(deleted.status == .notFound)
            #expect(try self.code(deleted) == "user_not_found")
        }
    }

    /// Attack stopped: locking everyone out of administration, by mistake or on purpose, by demoting or deleting the
    /// last active admin. Deactivated admins do not count.
    @Test func theLastActiveAdminCanBeNeitherDemotedNorDeleted() async throws {
        try await TestApp.run(admins: [Self.admin, "old@example.org"]) { client in
            try await client.register()
            let ann = try self.userId(try await client.login())
            let root = try await self.adminToken(client)
            let rootId = try self.userId(try await client.login(Self.admin, password: "admin password"))
            let old = try self.userId(try await client.login("old@example.org", password: "admin password"))
            #expect(try await client.call(.post, "/api/admin/users/\(old)/deactivate", token: root).status == .ok)

            let demote = try await self.role(client, rootId, "user", token: root)
            #expect(demote.status == .conflict)
            #expect(try self.code(demote) == "last_admin")
            let dryRun = try await client.postJSON("/api/admin/users/\(rootId)/role", ["role": "user", "dryRun": true], token: root)
            #expect(dryRun.status == .conflict)
            let deleteMe = try await self.deleteMe(client, password: "admin password", token: root)
            #expect(deleteMe.status == .conflict)
            #expect(try self.code(deleteMe) == "last_admin")
            #expect(try await client.ping(root) == .ok, "a refused demotion or deletion revokes nothing")
            #expect(try await client.call(.get, "/api/admin/users", token: root).status == .ok)

            // With a second active admin, the first may step down (and is signed out by it).
            #expect(try await self.role(client, ann, "admin", token: root).status == .ok)
            #expect(try await self.role(client, rootId, "user", token: root).status == .ok)
            #expect(try await client.ping(root) == .unauthorized)
            let annToken = try #require(try await client.login().string("accessToken"))
            let last = try await self.role(client, ann, "user", token: annToken)
            #expect(last.status == .conflict)
            #expect(try self.code(last) == "last_admin")
        }
    }

    /// Attack stopped: two admins demoting each other (or two operators racing) at the same moment, each seeing the
    /// other still an admin. The check and the change are one transaction under one lock: exactly one succeeds.
    @Test func twoDemotionsOfTheLastTwoAdminsAtOnceLeaveOneAdmin() async throws {
        try await TestApp.run(admins: [Self.admin, "second@example.org"]) { client in
            let first = try self.userId(try await client.login(Self.admin, password: "admin password"))
            let second = try self.userId(try await client.login("second@example.org", password: "admin password"))
            let firstToken = try await self.adminToken(client)
            let secondToken = try await self.adminToken(client, "second@example.org")
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                group.addTask { try await self.role(client, first, "user", token: secondToken).status }
                group.addTask { try await self.role(client, second, "user", token: firstToken).status }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.sorted { $0.code < $1.code } == [.ok, .conflict])
            var admins = 0
            for email in [Self.admin, "second@example.org"] {
                let token = try await self.adminToken(client, email)
                if try await client.call(.get, "/api/admin/users", token: token).status == .ok { admins += 1 }
            }
            #expect(admins == 1)
        }
    }

    /// Attack stopped: a stolen access token (or an unattended browser) deleting the account. The password is asked
    /// for, and a wrong one is answered as a password change answers it: 401 `invalid_credentials`, nothing deleted.
    @Test func deletingYourOwnAccountNeedsItsPasswordAndEndsEveryTokenAtOnce() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let other = try await client.login(device: "phone")
            let token = try #require(pair.string("accessToken"))
            let wrong = try await self.deleteMe(client, password: "not my password", token: token)
            #expect(wrong.status == .unauthorized)
            #expect(try self.code(wrong) == "invalid_credentials")
            #expect(wrong.headers[.wwwAuthenticate] == nil)
            #expect(try await client.call(.delete, "/api/me", token: token).status == .badRequest)
            #expect(try await self.deleteMe(client, password: "correct horse", token: nil).status == .unauthorized)
            #expect(try await client.ping(token) == .ok)

            #expect(try await self.deleteMe(client, password: "correct horse", token: token).status == .noContent)
            for held in [pair, other] {
                #expect(try await client.ping(held.string("accessToken")) == .unauthorized)
                #expect(try await client.call(.get, "/api/me", token: held.string("accessToken")).status == .unauthorized)
                let refresh = try await client.postJSON("/api/auth/refresh", ["refreshToken": try #require(held.string("refreshToken"))])
                #expect(refresh.status == .unauthorized)
            }
            let signIn = try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "correct horse"])
            #expect(signIn.status == .unauthorized)
            #expect(try self.code(signIn) == "invalid_credentials")
            #expect(try await self.deleteMe(client, password: "correct horse", token: token).status == .unauthorized)
        }
    }

    /// An operator deletes an account: gone from the listing, 404 to every admin action (it cannot be activated
    /// again), its tokens refused and explained as deleted; the address is free for a new account with a new id,
    /// which the old tokens never reach.
    @Test func anAdminDeletesAnAccountAndItsAddressCanBeRegisteredAgainAsANewAccount() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let old = try await client.login()
            let id = try self.userId(old)
            let admin = try await self.adminToken(client)
            let adminId = try self.userId(try await client.login(Self.admin, password: "admin password"))

            let dryRun = try await client.execute(
                uri: "/api/admin/users/\(id)", method: .delete, headers: [.authorization: "Bearer \(admin)", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"dryRun": true}"#)
            )
            #expect(dryRun.status == .ok)
            #expect(try JSONBody(dryRun)["sessions"] as? Int == 1)
            #expect(try await client.ping(old.string("accessToken")) == .ok, "a dry run deletes nothing")
            let own = try await client.call(.delete, "/api/admin/users/\(adminId)", token: admin)
            #expect(own.status == .conflict)
            #expect(try self.code(own) == "own_account")

            #expect(try await client.call(.delete, "/api/admin/users/\(id)", token: admin).status == .noContent)
            #expect(try await client.ping(old.string("accessToken")) == .unauthorized)
            let explained = try JSONBody(
                try await client.postJSON("/api/admin/explain", ["token": try #require(old.string("accessToken"))], token: admin)
            )
            #expect(explained.string("reason") == "revoked")
            let cut = try #require((explained["cuts"] as? [[String: Any]])?.first)
            #expect(cut["cause"] as? String == "account_deleted")
            #expect(cut["auditEvent"] as? String == "ACCOUNT_DELETED")

            let listed = try JSONBody(try await client.call(.get, "/api/admin/users", token: admin))
            #expect((listed["users"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == false)
            for (method, path) in [
                (HTTPRequest.Method.post, "/api/admin/users/\(id)/activate"), (.post, "/api/admin/users/\(id)/deactivate"),
                (.delete, "/api/admin/users/\(id)"), (.delete, "/api/admin/users/\(UUID())"),
            ] {
                #expect(try await client.call(method, path, token: admin).status == .notFound, "\(method) \(path)")
            }
            #expect(try await client.postJSON("/api/admin/users/\(id)/password", ["newPassword": "battery staple"], token: admin).status == .notFound)
            #expect(try await client.postJSON("/api/admin/revoke", ["userIds": [id]], token: admin).status == .notFound)

            try await client.register()
            let again = try await client.login()
            #expect(try self.userId(again) != id)
            #expect(try await client.ping(again.string("accessToken")) == .ok)
            #expect(try await client.ping(old.string("accessToken")) == .unauthorized)
            let deleted = try await self.events(client, "event=ACCOUNT_DELETED", token: admin)
            #expect(deleted.count == 1)
            #expect(deleted.first?["subjectId"] as? String == id)
            #expect(deleted.first?["actorId"] as? String == adminId)
            #expect(deleted.first?["details"] as? [String: String] == ["by": "admin"])
        }
    }

    /// What stays is pseudonymous: every audit row about the account is still there, found by its id, with no trace
    /// of its address, its device names or where its own requests came from; what an admin did to it keeps the
    /// admin's origin.
    @Test func auditRowsAboutADeletedAccountAreKeptWithoutItsAddress() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            // A failed sign-in naming the address before it had an account, then one with a wrong password.
            let unknown = try await client.postJSON("/api/auth/login", ["email": "Ann@Example.org", "password": "correct horse"])
            #expect(unknown.status == .unauthorized)
            try await client.register("Ann@Example.org")
            #expect(try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "wrong horse"]).status == .unauthorized)
            let pair = try await client.login("ann@example.org", device: "Ann's phone")
            let id = try self.userId(pair)
            let admin = try await self.adminToken(client)
            let adminAgent: HTTPFields = [.authorization: "Bearer \(admin)", .contentType: "application/json", .userAgent: "admin-console/1"]
            _ = try await client.execute(
                uri: "/api/admin/users/\(id)/deactivate", method: .post, headers: adminAgent,
                body: ByteBuffer(string: #"{"reason": "ann@example.org asked for a pause"}"#)
            )
            _ = try await client.call(.post, "/api/admin/users/\(id)/activate", token: admin)
            let token = try #require(try await client.login("ann@example.org").string("accessToken"))
            let before = try await self.events(client, "userId=\(id)&limit=100", token: admin)

            #expect(try await self.deleteMe(client, password: "correct horse", token: token, userAgent: "Ann's browser").status == .noContent)

            let response = try await client.call(.get, "/api/admin/audit?limit=500", token: admin)
            let text = String(buffer: response.body)
            #expect(!text.lowercased().contains("ann@example.org"), "no audit row names the address")
            #expect(!text.contains("Ann's phone") && !text.contains("Ann's browser"))
            let after = try await self.events(client, "userId=\(id)&limit=100", token: admin)
            #expect(after.count == before.count + 1, "every row about the account is kept, plus the deletion")
            #expect(after.first?["event"] as? String == "ACCOUNT_DELETED")
            #expect(after.first?["actorId"] as? String == id)
            #expect(after.first?["details"] as? [String: String] == ["by": "self"])
            for row in after where row["actorId"] as? String == id || row["actorId"] is NSNull {
                #expect(row["userAgent"] is NSNull, "\(row["event"] ?? "")")
            }
            let deactivation = try #require(after.first { $0["event"] as? String == "ACCOUNT_DEACTIVATED" })
            #expect(deactivation["userAgent"] as? String == "admin-console/1", "what the admin did keeps the admin's origin")
            #expect((deactivation["details"] as? [String: String])?["reason"] == "deleted:\(id) asked for a pause")
            let failed = try await self.events(client, "event=AUTH_LOGIN_FAILED", token: admin)
            #expect(failed.count == 2)
            #expect(failed.allSatisfy { ($0["details"] as? [String: String])?["email"] == nil })
            #expect(Set(failed.compactMap { ($0["details"] as? [String: String])?["reason"] }) == ["unknown_email", "wrong_password"])
        }
    }
}
