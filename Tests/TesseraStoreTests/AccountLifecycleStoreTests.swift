import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

/// Role changes and account deletion in the store, on both databases: the last-admin rule under concurrent
/// writers (two processes, each with its own connections), what a deletion erases and keeps, and the dry runs.
@Suite struct AccountLifecycleStoreTests {
    /// Attack stopped: two operators (or two admins demoting each other) at the same moment on two instances, each
    /// reading the other as still an admin. Every round, exactly one demotion commits and the other is refused; a
    /// deletion racing a demotion is refused the same way. On SQLite, which one server serves, both requests go
    /// through one process (a second process's write may wait out its lock bound on a loaded machine: a 503, not
    /// the race under test).
    @Test(arguments: TestBackend.all) func twoDemotionsOfTheLastTwoAdminsOnTwoInstancesLeaveOneAdmin(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { one in
                try await database.withProcess { other in
                    let two = backend == .postgres ? other : one
                    var admins: [UUID] = []
                    for email in ["first@example.org", "second@example.org"] {
                        admins.append(try await one.auth.register(email: email, password: "correct horse", role: .admin, origin: .commandLine).id)
                    }
                    let (first, second) = (admins[0], admins[1])
                    for round in 0..<12 {
                        // The last round races a deletion against the demotion.
                        let deletes = round == 11
                        async let a = outcome { try await one.auth.changeRole(userId: first, to: .user, actorId: second, origin: .commandLine) }
                        async let b = outcome {
                            if deletes {
                                try await two.auth.deleteAccount(userId: second, actorId: first, origin: .commandLine)
                            } else {
                                _ = try await two.auth.changeRole(userId: second, to: .user, actorId: first, origin: .commandLine)
                            }
                        }
                        let (resultA, resultB) = await (a, b)
                        let refusals = [resultA.map { _ in () }, resultB].compactMap { result -> AuthError? in
                            guard case .failure(let error) = result else { return nil }
                            return error as? AuthError
                        }
                        #expect(refusals == [.lastAdmin], "round \(round): \(resultA), \(resultB)")
                        let remaining = try await one.store.users(matching: nil, afterEmail: nil, limit: 10).filter {
                            $0.role == .admin && $0.isActive
                        }
                        #expect(remaining.count == 1, "round \(round)")
                        // Both admins again for the next round (the one still admin is left as it is).
                        for id in [first, second] where !deletes {
                            _ = try await one.auth.changeRole(userId: id, to: .admin, actorId: nil, origin: .commandLine)
                        }
                    }
                }
            }
        }
    }

    /// What a deletion leaves, read from the tables: the row as a tombstone, sessions ended without their origin,
    /// audit and log rows kept with ids and without the address; the address free for a new account; another process
    /// reading the log refuses the old tokens, and says why.
    @Test(arguments: TestBackend.all) func aDeletionErasesThePersonAndKeepsTheirIds(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let (old, pair) = try await database.withProcess { process -> (UUID, TokenPair) in
                _ = try? await process.auth.login(
                    email: "Cat@Example.org", password: "correct horse", origin: RequestOrigin(ip: "192.0.2.9", userAgent: "probe")
                )
                let pair = try await process.signUpAndIn("Cat@Example.org", device: "Cat's laptop")
                _ = try? await process.auth.login(
                    email: "cat@example.org", password: "wrong horse", origin: RequestOrigin(ip: "192.0.2.7", userAgent: "guess")
                )
                try await process.auth.revokeUsers(
                    [pair.user.id], actorId: nil, reason: "cat@example.org reported a lost laptop", origin: .commandLine
                )
                let again = try await process.signUpAndIn("cat@example.org", device: "Cat's phone")
                let script = try await process.auth.createAPIToken(
                    userId: again.user.id, name: "Cat's backup script", days: nil, actorId: nil,
                    origin: RequestOrigin(ip: "192.0.2.5", userAgent: "apiclient")
                )
                #expect(try await process.auth.authenticate(apiToken: script.token).userId == again.user.id)
                try await process.auth.deleteOwnAccount(
                    try process.auth.authenticate(accessToken: again.accessToken), password: "correct horse",
                    origin: RequestOrigin(ip: "192.0.2.8", userAgent: "Cat's browser")
                )
                #expect(await !process.accepts(again))
                await #expect(throws: AuthError.self) { _ = try await process.auth.authenticate(apiToken: script.token) }
                return (pair.user.id, again)
            }
            let id = old.lowercasedString
            try await database.withProcess { process in
                #expect(await !process.accepts(pair), "another process refuses the deleted account's tokens")
                try await process.store.database.read { db in
                    let user = try #require(try await db.raw("SELECT * FROM users WHERE id = \(bind: id)").first())
                    #expect(try user.decode(column: "email", as: String.self) == "deleted:\(id)")
                    #expect(try user.decode(column: "email_normalized", as: String.self) == "deleted:\(id)")
                    #expect(try user.decode(column: "password_hash", as: String.self) == AccountDeletion.unusablePasswordHash)
                    #expect(try user.decode(column: "is_active", as: Int.self) == 0)
                    #expect(try user.decode(column: "deleted_at", as: Int64?.self) != nil)
                    let sessions = try await db.raw("SELECT * FROM sessions WHERE user_id = \(bind: id)").all()
                    #expect(sessions.count == 2)
                    for session in sessions {
                        #expect(try session.decode(column: "invalidated_at", as: Int64?.self) != nil)
                        for column in ["ip", "user_agent", "device_name", "terminal_id"] {
                            #expect(try session.decode(column: column, as: String?.self) == nil, "\(column)")
                        }
                    }
                    let tokens = try await db.raw(
                        "SELECT name, ip, user_agent, invalidated_at FROM api_tokens WHERE user_id = \(bind: id)"
                    ).all()
                    #expect(tokens.count == 1)
                    for token in tokens {
                        #expect(try token.decode(column: "name", as: String.self) == "")
                        #expect(try token.decode(column: "ip", as: String?.self) == nil)
                        #expect(try token.decode(column: "user_agent", as: String?.self) == nil)
                        #expect(try token.decode(column: "invalidated_at", as: Int64?.self) != nil)
                    }
                    let audit = try await db.raw(
                        "SELECT id, event, actor_id, subject_id, ip, user_agent, details FROM audit_events ORDER BY id"
                    ).all()
                    let text = try audit.map { row in
                        try ["ip", "user_agent", "details"].compactMap { try row.decode(column: $0, as: String?.self) }
                            .joined(separator: " ")
                    }.joined(separator: "\n")
                    let traces = [
                        "cat@example.org", "Cat's laptop", "Cat's phone", "Cat's browser", "Cat's backup script", "127.0.0.1", "192.0.2.", "probe",
                        "guess", "apiclient",
                    ]
                    for trace in traces {
                        #expect(!text.lowercased().contains(trace.lowercased()), "\(trace)")
                    }
                    let events = try audit.map { try $0.decode(column: "event", as: String.self) }
                    let expected = [
                        "AUTH_LOGIN_FAILED", "USER_REGISTERED", "AUTH_LOGIN", "AUTH_LOGIN_FAILED", "REVOKE_USERS", "AUTH_LOGIN", "API_TOKEN_CREATED",
                        "ACCOUNT_DELETED",
                    ]
                    #expect(events == expected)
                    let aboutThem = try audit.filter { try $0.decode(column: "subject_id", as: String?.self) == id }
                    #expect(aboutThem.count == 7, "the rows keep their ids")
                    let reasons = try await db.raw("SELECT reason FROM revocations WHERE user_id = \(bind: id) ORDER BY seq").all()
                    let kept = try reasons.map { try $0.decode(column: "reason", as: String?.self) }
                    #expect(kept == ["deleted:\(id) reported a lost laptop", "account_deleted"])
                }
                let history = try await process.store.revocationHistory(of: .subject(userId: old))
                #expect(history.last?.cause == .accountDeleted)
                #expect(RevocationCause.accountDeleted.isUndoable == false && RevocationCause.roleChanged.isUndoable == false)
                #expect(try await process.store.users(matching: "cat", afterEmail: nil, limit: 10).isEmpty)
                #expect(try await process.auth.user(email: "cat@example.org") == nil)
                await #expect(throws: AuthError.invalidCredentials) {
                    _ = try await process.auth.login(email: "cat@example.org", password: "correct horse", origin: RequestOrigin())
                }
                let fresh = try await process.signUpAndIn("cat@example.org")
                #expect(fresh.user.id != old)
                #expect(await process.accepts(fresh))
                #expect(await !process.accepts(pair))
                await #expect(throws: AuthError.userNotFound) {
                    try await process.auth.deleteAccount(userId: old, actorId: nil, origin: .commandLine)
                }
                await #expect(throws: AuthError.userNotFound) {
                    _ = try await process.auth.activate(userId: old, actorId: nil, origin: .commandLine)
                }
                await #expect(throws: AuthError.userNotFound) {
                    _ = try await process.auth.unrevoke(.subject(old), actorId: nil, reason: nil, origin: .commandLine)
                }
            }
        }
    }

    @Test(arguments: TestBackend.all) func dryRunsOfARoleChangeAndADeletionCountWhatTheyCut(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let deletion = try await world.rehearse(.deleteAccount(world.ann), in: process) {
                try await process.auth.deleteAccount(userId: world.ann, actorId: nil, origin: .commandLine)
            }
            #expect(deletion == RevocationPreview(accounts: 1, sessions: 2, accessTokens: 1))
            let promotion = try await world.rehearse(.changeRole(world.dee, .admin), in: process) {
                let outcome = try await process.auth.changeRole(userId: world.dee, to: .admin, actorId: nil, origin: .commandLine)
                #expect(outcome.changed)
            }
            #expect(promotion == RevocationPreview(accounts: 1, sessions: 1, accessTokens: 1))
            let same = try await world.rehearse(.changeRole(world.bob, .user), in: process) {
                let outcome = try await process.auth.changeRole(userId: world.bob, to: .user, actorId: nil, origin: .commandLine)
                #expect(!outcome.changed)
            }
            #expect(same == RevocationPreview(accounts: 0, sessions: 0, accessTokens: 0))
            // Dee is the only admin now: both dry runs refuse as the actions do, and a deleted account is not found.
            for action in [RevocationPreview.Action.changeRole(world.dee, .user), .deleteAccount(world.dee)] {
                #expect(await DryRunStoreTests.thrown { try await process.auth.dryRun(action) } == .lastAdmin)
            }
            #expect(await DryRunStoreTests.thrown { try await process.auth.dryRun(.deleteAccount(world.ann)) } == .userNotFound)
            #expect(await DryRunStoreTests.thrown { try await process.auth.dryRun(.revokeUsers([world.ann])) } == .userNotFound)
            #expect(await DryRunStoreTests.thrown { try await process.auth.dryRun(.changeRole(UUID(), .admin)) } == .userNotFound)
        }
    }
}
