import Foundation
import Synchronization
import Testing
import TesseraCore

@testable import TesseraStore

/// The account and session rules end to end on a real SQLite file: what is written, what the index enforces,
/// and what another process on the same file sees.
@Suite struct AuthServiceTests {
    @Test(arguments: TestBackend.all) func signInRightAfterRevokeAllIsAcceptedInTheSameSecond(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let clock = ManualWallClock()
            try await database.withProcess(clock: clock) { process in
                let before = try await process.signUpAndIn()
                try await process.auth.revokeAll(actorId: nil, reason: "incident", origin: .commandLine)
                let after = try await process.signUpAndIn()
                #expect(before.claims.iat == after.claims.iat)
                #expect(await !process.accepts(before))
                #expect(await process.accepts(after))
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: before.refreshToken, origin: RequestOrigin())
                }
            }
        }
    }

    @Test(arguments: TestBackend.all) func aRefreshRotatesAndASpentRefreshTokenRevokesItsWholeSession(_ backend: TestBackend) async throws {
        // Attack: a stolen refresh token used after (or before) its owner. Whoever comes second loses, and the
        // session is gone for both.
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let first = try await process.signUpAndIn()
                let second = try await process.auth.refresh(refreshToken: first.refreshToken, origin: RequestOrigin())
                #expect(second.sessionId == first.sessionId)
                #expect(second.refreshToken != first.refreshToken)
                #expect(await process.accepts(second))

                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: first.refreshToken, origin: RequestOrigin(ip: "203.0.113.9", userAgent: "thief"))
                }
                #expect(await !process.accepts(first))
                #expect(await !process.accepts(second))
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: second.refreshToken, origin: RequestOrigin())
                }
                let reuse = try await process.store.auditEvents(AuditQuery(event: .tokenReuseDetected))
                #expect(reuse.count == 1)
                #expect(reuse.first?.sessionId == first.sessionId)
                #expect(reuse.first?.ip == "203.0.113.9")
            }
        }
    }

    @Test(arguments: TestBackend.all) func aRevocationWrittenByAnotherProcessIsEnforcedAfterTheNextPoll(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { server in
                let pair = try await server.signUpAndIn()
                try await database.withProcess { cli in
                    try await cli.auth.revokeUsers([pair.user.id], actorId: nil, reason: "stolen phone", origin: .commandLine)
                }
                #expect(await server.accepts(pair))
                try await server.follower.catchUp()
                #expect(await !server.accepts(pair))
            }
        }
    }

    @Test(arguments: TestBackend.all) func theFollowerServiceEnforcesAnotherProcessesRevocationWithinASecond(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { server in
                let pair = try await server.signUpAndIn()
                let following = Task { try await server.follower.run() }
                defer { following.cancel() }
                try await database.withProcess { cli in
                    try await cli.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
                }
                let deadline = ContinuousClock.now.advanced(by: .seconds(1))
                while await server.accepts(pair), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(await !server.accepts(pair))
            }
        }
    }

    @Test(arguments: TestBackend.all) func acknowledgedRevocationsSurviveARestart(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let (session, everywhere) = try await database.withProcess { process in
                let a = try await process.signUpAndIn("a@x.org")
                let b = try await process.signUpAndIn("b@x.org")
                try await process.auth.logout(try process.auth.authenticate(accessToken: a.accessToken), origin: RequestOrigin())
                try await process.auth.logoutAll(try process.auth.authenticate(accessToken: b.accessToken), origin: RequestOrigin())
                return (a, b)
            }
            try await database.withProcess { restarted in
                #expect(await !restarted.accepts(session))
                #expect(await !restarted.accepts(everywhere))
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await restarted.auth.refresh(refreshToken: everywhere.refreshToken, origin: RequestOrigin())
                }
            }
        }
    }

    @Test(arguments: TestBackend.all) func signingOutOfOtherDevicesKeepsThisOneWithAFreshPair(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let laptop = try await process.signUpAndIn(device: "laptop")
                let phone = try await process.signUpAndIn(device: "phone")
                let caller = try process.auth.authenticate(accessToken: laptop.accessToken)
                let fresh = try await process.auth.logoutOthers(caller, origin: RequestOrigin())
                #expect(fresh.sessionId == laptop.sessionId)
                #expect(await process.accepts(fresh))
                #expect(await !process.accepts(laptop))
                #expect(await !process.accepts(phone))
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: phone.refreshToken, origin: RequestOrigin())
                }
                _ = try await process.auth.refresh(refreshToken: fresh.refreshToken, origin: RequestOrigin())
                let live = try await process.store.liveSessions(userId: laptop.user.id, now: Date())
                #expect(live.map(\.id) == [laptop.sessionId])
            }
        }
    }

    @Test(arguments: TestBackend.all) func changingThePasswordRevokesEveryOtherTokenAndTheOldPassword(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let mine = try await process.signUpAndIn(password: "old password")
                let other = try await process.signUpAndIn(password: "old password")
                let caller = try process.auth.authenticate(accessToken: mine.accessToken)
                await #expect(throws: AuthError.invalidCredentials) {
                    _ = try await process.auth.changePassword(caller, currentPassword: "wrong one", newPassword: "new password", origin: RequestOrigin())
                }
                let fresh = try await process.auth.changePassword(caller, currentPassword: "old password", newPassword: "new password", origin: RequestOrigin())
                #expect(await process.accepts(fresh))
                #expect(await !process.accepts(other))
                await #expect(throws: AuthError.invalidCredentials) {
                    _ = try await process.auth.login(email: "ann@example.org", password: "old password", origin: RequestOrigin())
                }
                _ = try await process.auth.login(email: "ANN@example.org", password: "new password", origin: RequestOrigin())
                #expect(try await process.store.auditEvents(AuditQuery(event: .passwordChanged)).count == 1)
            }
        }
    }

    @Test(arguments: TestBackend.all) func aSessionOfAnotherUserCannotBeRevoked(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn("ann@x.org")
                let bob = try await process.signUpAndIn("bob@x.org")
                let caller = try process.auth.authenticate(accessToken: ann.accessToken)
                await #expect(throws: AuthError.sessionNotFound) {
                    try await process.auth.revokeOwnSession(bob.sessionId, caller: caller, origin: RequestOrigin())
                }
                #expect(await process.accepts(bob))
            }
        }
    }

    @Test(arguments: TestBackend.all) func everyEventIsAuditedWithWhereItCameFrom(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                _ = try? await process.auth.login(email: "ann@example.org", password: "wrong password", origin: RequestOrigin(ip: "198.51.100.7"))
                _ = try await process.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin(terminalId: "till-4"))
                let caller = try process.auth.authenticate(accessToken: pair.accessToken)
                try await process.auth.logoutAll(caller, origin: RequestOrigin(ip: "127.0.0.1", userAgent: "curl"))
                let events = try await process.store.auditEvents(AuditQuery(userId: pair.user.id))
                #expect(
                    events.map(\.event) == [.authLogout, .authRefresh, .authLoginFailed, .authLogin, .userRegistered]
                )
                #expect(events[0].details == ["event": "logout_all"])
                #expect(events[0].userAgent == "curl")
                #expect(events[1].terminalId == "till-4")
                #expect(events[2].ip == "198.51.100.7")
                #expect(events[3].sessionId == pair.sessionId)
            }
        }
    }

    @Test(arguments: TestBackend.all) func anUnknownEmailCostsOneBcryptCheckLikeAWrongPassword(_ backend: TestBackend) async throws {
        // Attack: account enumeration by timing. Both paths run exactly one bcrypt verification.
        let hasher = CountingHasher()
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(hasher: hasher) { process in
                _ = try await process.signUpAndIn()
                let before = hasher.verifications
                _ = try? await process.auth.login(email: "nobody@example.org", password: "whatever1", origin: RequestOrigin())
                #expect(hasher.verifications == before + 1)
                _ = try? await process.auth.login(email: "ann@example.org", password: "whatever1", origin: RequestOrigin())
                #expect(hasher.verifications == before + 2)
            }
        }
    }

    @Test(arguments: TestBackend.all) func elevenFailedSignInsLockTheAccountEvenWithTheRightPassword(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(hasher: BcryptPasswordHasher(cost: 4)) { process in
                _ = try await process.signUpAndIn()
                for _ in 0..<11 {
                    _ = try? await process.auth.login(email: "ann@example.org", password: "guess guess", origin: RequestOrigin())
                }
                await #expect(throws: AuthError.self) {
                    _ = try await process.auth.login(email: "ann@example.org", password: "correct horse", origin: RequestOrigin())
                }
            }
        }
    }
}

/// bcrypt at the lowest cost, counting verifications.
final class CountingHasher: PasswordHasher {
    private let inner = BcryptPasswordHasher(cost: 4)
    private let count = Mutex(0)
    var verifications: Int { self.count.withLock { $0 } }

    func hash(_ password: String) async throws -> String { try await self.inner.hash(password) }

    func verify(_ password: String, against hash: String) async throws -> Bool {
        self.count.withLock { $0 += 1 }
        return try await self.inner.verify(password, against: hash)
    }
}
