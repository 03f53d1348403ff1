import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TesseraCore

@testable import TesseraServer

/// The operator's routes: the incident story from "deactivate this person" to "revoke everyone, then undo it".
@Suite struct AdminRoutesTests {
    static let admin = "root@example.org"

    func adminToken(_ client: some TestClientProtocol) async throws -> String {
        try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
    }

    func userId(_ pair: JSONBody) throws -> String {
        try #require((pair["user"] as? [String: Any])?["id"] as? String)
    }

    @Test func adminRoutesAnswer401WithoutATokenAnd403ToAUser() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let user = try #require(try await client.login().string("accessToken"))
            let routes: [(HTTPRequest.Method, String)] = [
                (.get, "/api/admin/users"), (.post, "/api/admin/users/\(UUID())/deactivate"), (.post, "/api/admin/users/\(UUID())/activate"),
                (.post, "/api/admin/users/\(UUID())/password"), (.post, "/api/admin/revoke"), (.post, "/api/admin/revoke-all"),
                (.post, "/api/admin/unrevoke"), (.get, "/api/admin/audit"),
            ]
            for (method, path) in routes {
                #expect(try await client.call(method, path).status == .unauthorized, "\(path)")
                let forbidden = try await client.call(method, path, token: user)
                #expect(forbidden.status == .forbidden, "\(path)")
                #expect(try JSONBody(forbidden).string("code") == "forbidden")
            }
            // The user's token still works: a refused admin call revokes nothing.
            #expect(try await client.ping(user) == .ok)
        }
    }

    @Test func usersAreListedBySearchAndPagedByCursor() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            for name in ["amy", "bea", "cal", "dee", "eve"] { try await client.register("\(name)@corp.example") }
            try await client.register("zed@elsewhere.example")
            let token = try await self.adminToken(client)
            var seen: [String] = []
            var cursor: String?
            repeat {
                let query = "/api/admin/users?q=corp&limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try JSONBody(try await client.call(.get, query, token: token))
                seen += (page["users"] as? [[String: Any]] ?? []).compactMap { $0["email"] as? String }
                cursor = page.string("nextCursor")
                #expect(page.object.keys.contains("nextCursor"))
            } while cursor != nil
            #expect(seen == ["amy", "bea", "cal", "dee", "eve"].map { "\($0)@corp.example" })
            #expect(try await client.call(.get, "/api/admin/users?limit=0", token: token).status == .badRequest)
            #expect(try await client.call(.get, "/api/admin/users?cursor=%%%", token: token).status == .badRequest)
        }
    }

    @Test func deactivationRevokesEverythingAndRefusesSignInUntilActivated() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let id = try self.userId(pair)
            let token = try await self.adminToken(client)
            let deactivated = try await client.postJSON("/api/admin/users/\(id)/deactivate", ["reason": "left the company"], token: token)
            #expect(deactivated.status == .ok)
            #expect((try JSONBody(deactivated)["user"] as? [String: Any])?["isActive"] as? Bool == false)
            #expect(try await client.ping(pair.string("accessToken")) == .unauthorized)
            let refused = try await client.postJSON("/api/auth/login", ["email": "ann@example.org", "password": "correct horse"])
            #expect(refused.status == .forbidden)
            #expect(try JSONBody(refused).string("code") == "account_inactive")
            #expect(try await client.postJSON("/api/auth/refresh", ["refreshToken": pair.string("refreshToken")!]).status == .unauthorized)

            #expect(try await client.call(.post, "/api/admin/users/\(id)/activate", token: token).status == .ok)
            #expect(try await client.ping(pair.string("accessToken")) == .unauthorized)
            let again = try await client.login()
            #expect(try await client.ping(again.string("accessToken")) == .ok)
            #expect(try await client.call(.post, "/api/admin/users/\(UUID())/deactivate", token: token).status == .notFound)
            #expect(try await client.call(.post, "/api/admin/users/not-an-id/activate", token: token).status == .notFound)
        }
    }

    @Test func anAdminPasswordResetRevokesEveryTokenOfTheUser() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let pair = try await client.login()
            let token = try await self.adminToken(client)
            let reset = try await client.postJSON("/api/admin/users/\(try self.userId(pair))/password", ["newPassword": "set by admin"], token: token)
            #expect(reset.status == .ok)
            #expect(try await client.ping(pair.string("accessToken")) == .unauthorized)
            _ = try await client.login(password: "set by admin")
            let weak = try await client.postJSON("/api/admin/users/\(try self.userId(pair))/password", ["newPassword": "short"], token: token)
            #expect(weak.status == .unprocessableContent)
        }
    }

    @Test func aListOfUsersIsRevokedInOneCallAndOneAuditRow() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            for name in ["ann", "bob", "cat"] { try await client.register("\(name)@x.org") }
            let ann = try await client.login("ann@x.org")
            let bob = try await client.login("bob@x.org")
            let cat = try await client.login("cat@x.org")
            let token = try await self.adminToken(client)

            let unknown = try await client.postJSON("/api/admin/revoke", ["userIds": [try self.userId(ann), UUID().uuidString]], token: token)
            #expect(unknown.status == .notFound)
            #expect(try await client.ping(ann.string("accessToken")) == .ok)
            #expect(try await client.postJSON("/api/admin/revoke", ["userIds": []], token: token).status == .badRequest)
            #expect(try await client.postJSON("/api/admin/revoke", ["userIds": ["nope"]], token: token).status == .badRequest)

            let revoked = try await client.postJSON(
                "/api/admin/revoke", ["userIds": [try self.userId(ann), try self.userId(bob)], "reason": "phishing"], token: token
            )
            #expect(try JSONBody(revoked)["revoked"] as? Int == 2)
            #expect(try await client.ping(ann.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(bob.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(cat.string("accessToken")) == .ok)
            let audit = try JSONBody(try await client.call(.get, "/api/admin/audit?event=REVOKE_USERS", token: token))
            let rows = try #require(audit["events"] as? [[String: Any]])
            #expect(rows.count == 1)
            #expect((rows.first?["details"] as? [String: String])?["reason"] == "phishing")
        }
    }

    /// Attack stopped: a thief holding a token from before a security cut gets it back through an admin's "undo" —
    /// after a password change, a sign-out everywhere or of other devices, an admin password reset, or a
    /// deactivation followed by activation. Every such cut is final: the undo is refused (409) and audited.
    @Test(arguments: ["password", "logout-all", "logout-others", "reset", "deactivate"])
    func anUndoNeverRevivesATokenCutForSecurity(cut: String) async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let stolen = try await client.login()
            let id = try self.userId(stolen)
            let admin = try await self.adminToken(client)
            // An operator's mistaken revoke before the security cut: undoable on its own, but not past the cut.
            _ = try await client.postJSON("/api/admin/revoke", ["userIds": [id], "reason": "oops"], token: admin)
            let owner = try await client.login()
            let token = try #require(owner.string("accessToken"))
            switch cut {
            case "password":
                #expect(try await client.postJSON("/api/me/password", ["currentPassword": "correct horse", "newPassword": "battery staple"], token: token).status == .ok)
            case "logout-all":
                #expect(try await client.call(.post, "/api/auth/logout-all", token: token).status == .noContent)
            case "logout-others":
                #expect(try await client.call(.post, "/api/auth/logout-others", token: token).status == .ok)
            case "reset":
                #expect(try await client.postJSON("/api/admin/users/\(id)/password", ["newPassword": "battery staple"], token: admin).status == .ok)
            default:
                #expect(try await client.call(.post, "/api/admin/users/\(id)/deactivate", token: admin).status == .ok)
                #expect(try await client.call(.post, "/api/admin/users/\(id)/activate", token: admin).status == .ok)
            }
            for _ in 0..<2 {
                let undo = try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: admin)
                #expect(undo.status == .conflict)
                #expect(try JSONBody(undo).string("code") == "cut_is_final")
            }
            #expect(try await client.ping(stolen.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(token) == .unauthorized)
            let refresh = try await client.postJSON("/api/auth/refresh", ["refreshToken": try #require(stolen.string("refreshToken"))])
            #expect(refresh.status == .unauthorized)
            let audit = try JSONBody(try await client.call(.get, "/api/admin/audit?event=UNREVOKE_REFUSED&userId=\(id)", token: admin))
            #expect((audit["events"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test func revokeAllThenUndoItTellsTheStoryBackInTheAuditLog() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let user = try await client.login()
            let adminBefore = try await self.adminToken(client)

            let revokeAll = try await client.postJSON("/api/admin/revoke-all", ["reason": "key leak"], token: adminBefore)
            #expect(try JSONBody(revokeAll)["epoch"] as? Int == 1)
            #expect(try await client.ping(user.string("accessToken")) == .unauthorized)
            #expect(try await client.ping(adminBefore) == .unauthorized)

            let adminAfter = try await self.adminToken(client)
            #expect(try await client.ping(adminAfter) == .ok)
            let undo = try await client.postJSON("/api/admin/unrevoke", ["all": true, "reason": "false alarm"], token: adminAfter)
            #expect(undo.status == .ok)
            #expect(try JSONBody(undo)["epoch"] as? Int == 0)
            #expect(try await client.ping(user.string("accessToken")) == .ok)
            #expect(try await client.ping(adminBefore) == .ok)
            #expect(try await client.ping(adminAfter) == .ok)
            let nothing = try await client.postJSON("/api/admin/unrevoke", ["all": true], token: adminAfter)
            #expect(nothing.status == .conflict)
            #expect(try JSONBody(nothing).string("code") == "nothing_to_undo")

            let audit = try JSONBody(try await client.call(.get, "/api/admin/audit?limit=3", token: adminAfter))
            let events = try #require(audit["events"] as? [[String: Any]]).map { $0["event"] as? String }
            #expect(events == ["UNREVOKE_REFUSED", "UNREVOKE", "AUTH_LOGIN"])
        }
    }

    @Test func unrevokeRestoresAUsersTokensOnlyForTheLatestRevokeAndNotWhileInactive() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let first = try await client.login()
            let id = try self.userId(first)
            let token = try await self.adminToken(client)
            _ = try await client.postJSON("/api/admin/revoke", ["userIds": [id]], token: token)
            let second = try await client.login()
            _ = try await client.postJSON("/api/admin/revoke", ["userIds": [id]], token: token)
            #expect(try await client.ping(second.string("accessToken")) == .unauthorized)

            #expect(try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: token).status == .ok)
            #expect(try await client.ping(second.string("accessToken")) == .ok)
            #expect(try await client.ping(first.string("accessToken")) == .unauthorized)
            #expect(try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: token).status == .ok)
            #expect(try await client.ping(first.string("accessToken")) == .ok)
            #expect(try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: token).status == .conflict)

            _ = try await client.call(.post, "/api/admin/users/\(id)/deactivate", token: token)
            let inactive = try await client.postJSON("/api/admin/unrevoke", ["userId": id], token: token)
            #expect(inactive.status == .conflict)
            #expect(try JSONBody(inactive).string("code") == "account_inactive")
            #expect(try await client.postJSON("/api/admin/unrevoke", ["userId": UUID().uuidString], token: token).status == .notFound)
            #expect(try await client.postJSON("/api/admin/unrevoke", ["userId": id, "all": true], token: token).status == .badRequest)
        }
    }

    @Test func auditPagingVisitsEachRowOnceWhileRowsArrive() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            for _ in 0..<12 { _ = try await client.login() }
            let token = try await self.adminToken(client)
            var ids: [Int] = []
            var cursor: String?
            var newest: Int?
            repeat {
                let page = try JSONBody(try await client.call(.get, "/api/admin/audit?limit=5" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token))
                let rows = try #require(page["events"] as? [[String: Any]]).compactMap { ($0["id"] as? String).flatMap(Int.init) }
                if newest == nil { newest = rows.first }
                ids += rows
                cursor = page.string("nextCursor")
                // New rows arrive between pages; they are newer than the cursor and must not show up in this listing.
                _ = try await client.login()
            } while cursor != nil
            #expect(Set(ids).count == ids.count)
            #expect(ids == ids.sorted(by: >))
            #expect(ids.first == newest)
            #expect(ids.count == (newest ?? 0))
        }
    }

    @Test func auditFiltersByUserEventAndTime() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register("ann@x.org")
            try await client.register("bob@x.org")
            let ann = try await client.login("ann@x.org")
            _ = try await client.login("bob@x.org")
            _ = try await client.call(.post, "/api/auth/logout", token: ann.string("accessToken"))
            let token = try await self.adminToken(client)
            let annId = try self.userId(ann)
            let mine = try JSONBody(try await client.call(.get, "/api/admin/audit?userId=\(annId)", token: token))
            let events = try #require(mine["events"] as? [[String: Any]])
            #expect(events.map { $0["event"] as? String } == ["AUTH_LOGOUT", "AUTH_LOGIN", "USER_REGISTERED"])
            #expect((events.first?["details"] as? [String: String])?["event"] == "logout")
            #expect(events.allSatisfy { $0["subjectId"] as? String == annId })
            let logins = try JSONBody(try await client.call(.get, "/api/admin/audit?event=AUTH_LOGIN", token: token))
            #expect((logins["events"] as? [[String: Any]])?.count == 3)
            let future = try JSONBody(try await client.call(.get, "/api/admin/audit?since=2999-01-01T00:00:00Z", token: token))
            #expect((future["events"] as? [[String: Any]])?.isEmpty == true)
            let past = try JSONBody(try await client.call(.get, "/api/admin/audit?until=2000-01-01T00:00:00Z", token: token))
            #expect((past["events"] as? [[String: Any]])?.isEmpty == true)
            for bad in ["limit=0", "limit=abc", "since=yesterday", "event=NOPE", "userId=42", "cursor=!!"] {
                let response = try await client.call(.get, "/api/admin/audit?\(bad)", token: token)
                #expect(response.status == .badRequest, "\(bad)")
            }
        }
    }
}
