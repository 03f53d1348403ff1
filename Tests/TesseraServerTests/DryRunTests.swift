import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TesseraCore
import TesseraStore

@testable import TesseraServer

/// `"dryRun": true` on the admin routes that revoke: the answer counts what the request would do, and nothing is
/// written — no log row, no audit row, no account change, nothing in the running server's index (every token it
/// would cut still works). Then the real request cuts (or revives) exactly what was counted.
@Suite struct DryRunTests {
    static let admin = "root@example.org"

    @Test func aDryRunOfRevokingOneUserWritesNothingAndCountsWhatTheRevokeCuts() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            let bob = try await app.signIn("bob@example.org", times: 1)
            let preview = try await app.dryRun("/api/admin/revoke", ["userIds": [ann.id]])
            #expect(preview == Preview(accounts: 1, sessions: 2, accessTokens: 2))
            #expect(try await app.accepted(ann.tokens) == 2, "the dry run cut nothing")

            let revoked = try JSONBody(try await app.post("/api/admin/revoke", ["userIds": [ann.id]]))
            #expect(revoked["revoked"] as? Int == preview.accounts)
            #expect(try await app.accepted(ann.tokens) == 0)
            #expect(try await app.accepted(bob.tokens) == 1)
        }
    }

    @Test func aDryRunOfRevokingSeveralUsersCountsEachAccountOnce() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            let bob = try await app.signIn("bob@example.org", times: 1)
            let cy = try await app.signIn("cy@example.org", times: 0)
            let ids = [ann.id, bob.id, cy.id, ann.id]
            let preview = try await app.dryRun("/api/admin/revoke", ["userIds": ids, "reason": "incident"])
            #expect(preview == Preview(accounts: 3, sessions: 3, accessTokens: 3))
            #expect(try await app.accepted(ann.tokens + bob.tokens) == 3, "the dry run cut nothing")

            let revoked = try JSONBody(try await app.post("/api/admin/revoke", ["userIds": ids]))
            #expect(revoked["revoked"] as? Int == preview.accounts)
            #expect(try await app.accepted(ann.tokens + bob.tokens) == 0)
        }
    }

    @Test func aDryRunOfRevokeAllCountsEveryAccountAndLeavesEveryTokenWorking() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            let bob = try await app.signIn("bob@example.org", times: 1)
            _ = try await app.signIn("cy@example.org", times: 0)
            let everyone = ann.tokens + bob.tokens + [app.adminToken]
            let preview = try await app.dryRun("/api/admin/revoke-all", [:])
            // Three accounts and the admin; every session, the admin's own included.
            #expect(preview == Preview(accounts: 4, sessions: everyone.count, accessTokens: everyone.count))
            #expect(try await app.accepted(everyone) == everyone.count, "the dry run cut nothing")

            #expect(try await app.post("/api/admin/revoke-all", [:]).status == .ok)
            #expect(try await app.accepted(everyone) == 0)
        }
    }

    @Test func aDryRunOfDeactivationLeavesTheAccountActive() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            let preview = try await app.dryRun("/api/admin/users/\(ann.id)/deactivate", ["reason": "left", "dryRun": true])
            #expect(preview == Preview(accounts: 1, sessions: 2, accessTokens: 2))
            #expect(try await app.store.user(id: try #require(UUID(uuidString: ann.id)))?.isActive == true)
            #expect(try await app.accepted(ann.tokens) == 2, "the dry run cut nothing")

            let deactivated = try JSONBody(try await app.post("/api/admin/users/\(ann.id)/deactivate", [:]))
            #expect((deactivated["user"] as? [String: Any])?["isActive"] as? Bool == false)
            #expect(try await app.accepted(ann.tokens) == 0)
        }
    }

    @Test func aDryRunOfAnUndoCountsTheTokensItWouldRevive() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            #expect(try await app.post("/api/admin/revoke", ["userIds": [ann.id]]).status == .ok)
            // Signed in after the cut: already accepted, not revived.
            let later = try await app.signIn("ann@example.org", times: 1)
            let preview = try await app.dryRun("/api/admin/unrevoke", ["userId": ann.id])
            #expect(preview == Preview(accounts: 1, sessions: 2, accessTokens: 2))
            #expect(try await app.accepted(ann.tokens) == 0)

            #expect(try await app.post("/api/admin/unrevoke", ["userId": ann.id]).status == .ok)
            #expect(try await app.accepted(ann.tokens) == preview.accessTokens)
            #expect(try await app.accepted(later.tokens) == 1)
        }
    }

    @Test func aDryRunOfUndoingRevokeAllCountsTheTokensItWouldRevive() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 2)
            let before = ann.tokens + [app.adminToken]
            #expect(try await app.post("/api/admin/revoke-all", [:]).status == .ok)
            try await app.signInAdminAgain()
            let preview = try await app.dryRun("/api/admin/unrevoke", ["all": true])
            #expect(preview == Preview(accounts: 2, sessions: before.count, accessTokens: before.count))
            #expect(try await app.accepted(before) == 0)

            #expect(try await app.post("/api/admin/unrevoke", ["all": true]).status == .ok)
            #expect(try await app.accepted(before) == preview.accessTokens)
        }
    }

    /// Attack: an undo past a cut made for security, rehearsed first. The dry run is refused with the same status
    /// and code as the undo, and, unlike the undo, writes no `UNREVOKE_REFUSED` row.
    @Test func aDryRunOfAnUndoIsRefusedWhereTheUndoIsAndRecordsNothing() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 1)
            let bob = try await app.signIn("bob@example.org", times: 1)
            #expect(try await app.call(.post, "/api/auth/logout-all", token: bob.tokens[0]).status == .noContent)
            #expect(try await app.post("/api/admin/users/\(ann.id)/deactivate", [:]).status == .ok)
            let cases: [([String: Any], HTTPResponse.Status, String)] = [
                (["all": true], .conflict, "nothing_to_undo"),
                (["userId": bob.id], .conflict, "cut_is_final"),
                (["userId": ann.id], .conflict, "account_inactive"),
                (["userId": UUID().uuidString], .notFound, "user_not_found"),
            ]
            for (body, status, code) in cases {
                let written = try await app.written()
                var dry = body
                dry["dryRun"] = true
                let rehearsed = try await app.post("/api/admin/unrevoke", dry)
                #expect(rehearsed.status == status, "\(code)")
                #expect(try JSONBody(rehearsed).string("code") == code)
                #expect(try await app.written() == written, "a refused dry run writes nothing (\(code))")

                let real = try await app.post("/api/admin/unrevoke", body)
                #expect(real.status == status)
                #expect(try JSONBody(real).string("code") == code)
                let audited = try await app.written().audit.count - written.audit.count
                #expect(audited == (code == "user_not_found" ? 0 : 1), "the real refusal is audited (\(code))")
            }
        }
    }

    /// Attack: a flag that is not a boolean (`"dryRun": "true"`, `1`) taken for "no dry run", so that a rehearsal
    /// cuts for real. Such a body is refused as a whole and nothing is cut; `false` and `null` are real runs.
    @Test func aDryRunFlagThatIsNoBooleanIsRefusedAndCutsNothing() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 1)
            let written = try await app.written()
            for flag in ["true", 1, "yes", [true]] as [Any] {
                let requests: [(String, [String: Any])] = [
                    ("/api/admin/revoke", ["userIds": [ann.id], "dryRun": flag]), ("/api/admin/revoke-all", ["dryRun": flag]),
                    ("/api/admin/users/\(ann.id)/deactivate", ["dryRun": flag]), ("/api/admin/unrevoke", ["all": true, "dryRun": flag]),
                ]
                for (path, body) in requests {
                    let refused = try await app.post(path, body)
                    #expect(refused.status == .badRequest, "\(path) \(flag)")
                    #expect(try JSONBody(refused).string("code") == "invalid_body")
                }
            }
            #expect(try await app.written() == written)
            #expect(try await app.accepted(ann.tokens + [app.adminToken]) == 2)
            let real = try await app.post("/api/admin/revoke", ["userIds": [ann.id], "dryRun": NSNull()])
            #expect(try JSONBody(real)["revoked"] as? Int == 1)
            #expect(try await app.post("/api/admin/unrevoke", ["userId": ann.id, "dryRun": false]).status == .ok)
        }
    }

    @Test func aUserCannotDryRunAnAdminRoute() async throws {
        try await Self.withApp { app in
            let ann = try await app.signIn("ann@example.org", times: 1)
            let refused = try await app.client.postJSON("/api/admin/revoke-all", ["dryRun": true], token: ann.tokens[0])
            #expect(refused.status == .forbidden)
        }
    }
}

extension DryRunTests {
    /// The counts of a dry run's answer.
    struct Preview: Equatable {
        var accounts: Int
        var sessions: Int
        var accessTokens: Int
    }

    /// An account and the access tokens of its sessions.
    struct Account {
        var id: String
        var tokens: [String]
    }

    /// What a dry run must not write, read from the file by a second connection.
    struct Written: Equatable {
        var revocations: [Int64]
        var audit: [Int64]
        var active: [UUID: Bool]
    }

    /// The real application on a file of its own, an admin signed in, and a second reader of the file.
    final class App: @unchecked Sendable {
        let client: any TestClientProtocol
        let store: SQLAuthStore
        var adminToken: String

        init(client: any TestClientProtocol, store: SQLAuthStore, adminToken: String) {
            self.client = client
            self.store = store
            self.adminToken = adminToken
        }

        func post(_ path: String, _ body: [String: Any]) async throws -> TestResponse {
            try await self.client.postJSON(path, body, token: self.adminToken)
        }

        func call(_ method: HTTPRequest.Method, _ path: String, token: String) async throws -> TestResponse {
            try await self.client.call(method, path, token: token)
        }

        /// Posts the body with `"dryRun": true`, checks that the answer is a dry run's and that nothing was written
        /// nor cut (every token that worked still works), and returns its counts.
        func dryRun(_ path: String, _ body: [String: Any]) async throws -> Preview {
            let written = try await self.written()
            var body = body
            body["dryRun"] = true
            let response = try await self.post(path, body)
            #expect(response.status == .ok)
            let answer = try JSONBody(response)
            #expect(Set(answer.object.keys) == ["dryRun", "accounts", "sessions", "accessTokens"])
            #expect(answer["dryRun"] as? Bool == true)
            #expect(try await self.written() == written, "a dry run writes no log row, audit row or account change")
            #expect(try await self.ping(self.adminToken), "the index still accepts the admin's token")
            return Preview(
                accounts: try #require(answer["accounts"] as? Int), sessions: try #require(answer["sessions"] as? Int),
                accessTokens: try #require(answer["accessTokens"] as? Int)
            )
        }

        /// Registers the account if needed and signs it in `times` times.
        func signIn(_ email: String, times: Int) async throws -> Account {
            let registered = try await self.client.postJSON("/api/auth/register", ["email": email, "password": "correct horse"]).status
            #expect(registered == .created || registered == .conflict, "\(email)")
            var tokens: [String] = []
            var id = ""
            for _ in 0..<times {
                let pair = try await self.client.login(email)
                tokens.append(try #require(pair.string("accessToken")))
                id = try #require((pair["user"] as? [String: Any])?["id"] as? String)
            }
            if id.isEmpty { id = try #require(try await self.store.credentials(normalizedEmail: email)?.user.id.lowercasedString) }
            return Account(id: id, tokens: tokens)
        }

        func signInAdminAgain() async throws {
            self.adminToken = try #require(try await self.client.login(DryRunTests.admin, password: "admin password").string("accessToken"))
        }

        func ping(_ token: String) async throws -> Bool { try await self.client.ping(token) == .ok }

        /// How many of these access tokens the server accepts.
        func accepted(_ tokens: [String]) async throws -> Int {
            var count = 0
            for token in tokens where try await self.ping(token) { count += 1 }
            return count
        }

        func written() async throws -> Written {
            let revocations = try await self.store.revocations(after: 0, limit: 10_000).map(\.seq)
            let audit = try await self.store.auditEvents(AuditQuery(limit: 10_000)).compactMap(\.id).sorted()
            let users = try await self.store.users(matching: nil, afterEmail: nil, limit: 1000)
            return Written(revocations: revocations, audit: audit, active: Dictionary(uniqueKeysWithValues: users.map { ($0.id, $0.isActive) }))
        }
    }

    static func withApp(_ test: @escaping @Sendable (App) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-dry-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tessera.sqlite").path
        try await TestApp.run(admins: [Self.admin], { $0.database = .sqlite(path: path) }) { client in
            var logger = Logger(label: "tessera.test.reader")
            logger.logLevel = .critical
            let reader = try await StoreFactory.open(.sqlite(path: path), migrate: false, create: false, poolSize: 1, logger: logger)
            do {
                let token = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
                try await test(App(client: client, store: reader, adminToken: token))
                await reader.database.close()
            } catch {
                await reader.database.close()
                throw error
            }
        }
    }
}
