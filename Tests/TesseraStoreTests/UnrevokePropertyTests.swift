import Foundation
import Testing
import TesseraCore

@testable import TesseraStore

/// Random histories of sign-ins, revokes, password changes, sign-outs, deactivations and undos, replayed against the
/// real service on a real SQLite file and against a reference model that knows nothing of versions or epochs: a
/// token is accepted iff its session was not signed out and no cut of its user, nor any global cut, made after it
/// was issued is still in force. Un-revoke, in the model, takes back the latest cut in force if an operator's bulk
/// action made it, and is refused otherwise.
///
/// Attack stopped: an operator's undo (by mistake, or by whoever stole an admin token) reviving the tokens that a
/// password change, a sign-out everywhere, a deactivation or a password reset cut — directly, or by walking back
/// past such a cut with repeated undos.
@Suite struct UnrevokePropertyTests {
    static let users = ["ann@example.org", "bob@example.org", "cy@example.org"]

    @Test(arguments: TestBackend.all, 0..<24)
    func everyTokenIsAcceptedExactlyWhenTheReferenceModelSaysSo(_ backend: TestBackend, seed: UInt64) async throws {
        try await TestDatabase.with(backend) { database in
            var random = SplitMix64(seed: seed &* 0x9E37_79B9 &+ 17)
            let model = try await database.withProcess { process in
                let run = HistoryRun(process: process)
                for _ in 0..<36 {
                    try await run.step(random: &random)
                    try await run.checkEveryToken()
                }
                return run
            }
            // A process that starts now and reads the whole log must come to the same verdicts.
            try await database.withProcess { fresh in
                for issued in model.tokens {
                    let accepted = await fresh.accepts(issued.pair)
                    #expect(accepted == model.model.accepts(issued), "seed \(seed): a fresh process disagrees on \(issued.label)")
                }
                // A refresh token is accepted exactly when its session's latest access token is.
                var latest: [UUID: IssuedToken] = [:]
                for issued in model.tokens { latest[issued.pair.sessionId] = issued }
                for issued in latest.values {
                    let refreshed = (try? await fresh.auth.refresh(refreshToken: issued.pair.refreshToken, origin: RequestOrigin())) != nil
                    let expected = model.model.accepts(issued) && !model.model.inactive.contains(issued.user)
                    #expect(refreshed == expected, "seed \(seed): refresh of \(issued.label) was \(refreshed ? "accepted" : "refused")")
                }
            }
        }
    }

    @Test(arguments: TestBackend.all) func aPasswordChangeIsNeverUndoneNorWalkedPast(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let stolen = try await process.signUpAndIn()
                try await process.auth.revokeUsers([stolen.user.id], actorId: nil, reason: "mistake", origin: .commandLine)
                let owner = try await process.signUpAndIn()
                let caller = try process.auth.authenticate(accessToken: owner.accessToken)
                _ = try await process.auth.changePassword(caller, currentPassword: "correct horse", newPassword: "battery staple", origin: RequestOrigin())
                // The admin revoke before the password change could be undone on its own; the password change stands
                // between it and now, so neither the change nor the revoke behind it may be undone.
                await #expect(throws: AuthError.cutIsFinal(cause: .passwordChanged)) {
                    try await process.auth.unrevoke(.subject(stolen.user.id), actorId: nil, reason: nil, origin: .commandLine)
                }
                #expect(await !process.accepts(stolen))
                #expect(await !process.accepts(owner))
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: owner.refreshToken, origin: RequestOrigin())
                }
                let refused = try await process.store.auditEvents(AuditQuery(event: .unrevokeRefused))
                #expect(refused.count == 1)
                #expect(refused.first?.details["code"] == "cut_is_final")
                #expect(refused.first?.details["cause"] == "password_changed")
                #expect(refused.first?.subjectId == stolen.user.id)
                #expect(try await process.auth.undoableCuts(userIds: [stolen.user.id]) == UndoableCuts())
            }
        }
    }
}

/// A token the history issued, with when (in the model's ticks) and for whom.
struct IssuedToken {
    let pair: TokenPair
    let user: String
    let tick: Int
    var label: String { "\(self.user)'s token of tick \(self.tick)" }
}

/// The reference: stacks of cuts in force, with ticks, and nothing else.
struct ReferenceModel {
    struct Cut {
        let tick: Int
        let undoable: Bool
    }

    var tick = 0
    var subjectCuts: [String: [Cut]] = [:]
    var globalCuts: [Cut] = []
    var signedOutSessions: Set<UUID> = []
    var inactive: Set<String> = []
    var passwords: [String: String] = [:]

    mutating func next() -> Int {
        self.tick += 1
        return self.tick
    }

    func accepts(_ token: IssuedToken) -> Bool {
        if self.signedOutSessions.contains(token.pair.sessionId) { return false }
        if (self.subjectCuts[token.user] ?? []).contains(where: { $0.tick > token.tick }) { return false }
        return !self.globalCuts.contains(where: { $0.tick > token.tick })
    }

    mutating func cut(_ user: String, undoable: Bool) {
        self.subjectCuts[user, default: []].append(Cut(tick: self.next(), undoable: undoable))
    }

    /// What an undo of this user's cuts must answer, applied to the model.
    mutating func undo(_ user: String) -> AuthError? {
        if self.inactive.contains(user) { return .accountInactiveCannotBeUnrevoked }
        guard let top = self.subjectCuts[user]?.last else { return .nothingToUndo }
        guard top.undoable else { return .cutIsFinal(cause: .passwordChanged) }
        self.subjectCuts[user]?.removeLast()
        return nil
    }

    mutating func undoGlobal() -> AuthError? {
        guard self.globalCuts.last != nil else { return .nothingToUndo }
        self.globalCuts.removeLast()
        return nil
    }
}

/// Drives one random history against the service and the model side by side.
final class HistoryRun: @unchecked Sendable {
    let process: TestProcess
    var model = ReferenceModel()
    var tokens: [IssuedToken] = []
    var ids: [String: UUID] = [:]

    init(process: TestProcess) {
        self.process = process
    }

    func step(random: inout SplitMix64) async throws {
        let user = UnrevokePropertyTests.users[Int(random.next() % UInt64(UnrevokePropertyTests.users.count))]
        switch random.next() % 12 {
        case 0, 1:
            try await self.signIn(user)
        case 2:
            guard let id = try await self.id(user) else { return }
            try await self.process.auth.revokeUsers([id], actorId: nil, reason: "bulk", origin: .commandLine)
            self.model.cut(user, undoable: true)
        case 3, 4:
            guard let id = try await self.id(user) else { return }
            let expected = self.model.undo(user)
            do {
                try await self.process.auth.unrevoke(.subject(id), actorId: nil, reason: nil, origin: .commandLine)
                #expect(expected == nil, "undo of \(user) succeeded where the model refuses it (\(String(describing: expected)))")
            } catch let error as AuthError {
                #expect(expected != nil, "undo of \(user) refused (\(error)) where the model allows it")
                if case .cutIsFinal = error, case .cutIsFinal = expected {} else if error != expected {
                    Issue.record("undo of \(user): \(error), the model says \(String(describing: expected))")
                }
            }
        case 5:
            guard let caller = try await self.caller(user) else { return }
            let password = "new password \(self.model.tick)"
            let fresh = try await self.process.auth.changePassword(
                caller, currentPassword: self.model.passwords[user] ?? "", newPassword: password, origin: RequestOrigin()
            )
            self.model.passwords[user] = password
            self.model.cut(user, undoable: false)
            self.tokens.append(IssuedToken(pair: fresh, user: user, tick: self.model.next()))
        case 6:
            guard let id = try await self.id(user) else { return }
            let password = "reset password \(self.model.tick)"
            _ = try await self.process.auth.resetPassword(userId: id, newPassword: password, actorId: nil, origin: .commandLine)
            self.model.passwords[user] = password
            self.model.cut(user, undoable: false)
        case 7:
            guard let caller = try await self.caller(user) else { return }
            if random.next() % 2 == 0 {
                try await self.process.auth.logoutAll(caller, origin: RequestOrigin())
                self.model.cut(user, undoable: false)
            } else {
                let fresh = try await self.process.auth.logoutOthers(caller, origin: RequestOrigin())
                self.model.cut(user, undoable: false)
                self.tokens.append(IssuedToken(pair: fresh, user: user, tick: self.model.next()))
            }
        case 8:
            guard let caller = try await self.caller(user) else { return }
            try await self.process.auth.logout(caller, origin: RequestOrigin())
            self.model.signedOutSessions.insert(caller.sessionId)
        case 9:
            guard let id = try await self.id(user) else { return }
            if self.model.inactive.contains(user) {
                _ = try await self.process.auth.activate(userId: id, actorId: nil, origin: .commandLine)
                self.model.inactive.remove(user)
            } else {
                _ = try await self.process.auth.deactivate(userId: id, actorId: nil, reason: "left", origin: .commandLine)
                self.model.cut(user, undoable: false)
                self.model.inactive.insert(user)
            }
        case 10:
            try await self.process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
            self.model.globalCuts.append(ReferenceModel.Cut(tick: self.model.next(), undoable: true))
        default:
            let expected = self.model.undoGlobal()
            do {
                try await self.process.auth.unrevoke(.global, actorId: nil, reason: nil, origin: .commandLine)
                #expect(expected == nil)
            } catch let error as AuthError {
                #expect(error == expected)
            }
        }
        // What the console offers must be exactly what an undo would do.
        var offered: Set<UUID> = []
        var model = self.model
        for (user, id) in self.ids where model.undo(user) == nil { offered.insert(id) }
        let undoable = try await self.process.auth.undoableCuts(userIds: Array(self.ids.values))
        #expect(undoable.subjects == offered)
        #expect(undoable.global == !self.model.globalCuts.isEmpty)
    }

    func checkEveryToken() async throws {
        for issued in self.tokens {
            let accepted = await self.process.accepts(issued.pair)
            #expect(accepted == self.model.accepts(issued), "\(issued.label) was \(accepted ? "accepted" : "refused")")
        }
    }

    private func signIn(_ user: String) async throws {
        guard !self.model.inactive.contains(user) else { return }
        if self.ids[user] == nil {
            let created = try await self.process.auth.register(email: user, password: "correct horse", origin: RequestOrigin())
            self.ids[user] = created.id
            self.model.passwords[user] = "correct horse"
        }
        let pair = try await self.process.auth.login(email: user, password: self.model.passwords[user] ?? "", origin: RequestOrigin())
        self.tokens.append(IssuedToken(pair: pair, user: user, tick: self.model.next()))
    }

    private func id(_ user: String) async throws -> UUID? {
        if self.ids[user] == nil { try await self.signIn(user) }
        return self.ids[user]
    }

    /// A verified token of the user that the model says is accepted, signing in for one if there is none.
    private func caller(_ user: String) async throws -> VerifiedAccessToken? {
        guard !self.model.inactive.contains(user) else { return nil }
        if !self.tokens.contains(where: { $0.user == user && self.model.accepts($0) }) { try await self.signIn(user) }
        guard let issued = self.tokens.last(where: { $0.user == user && self.model.accepts($0) }) else { return nil }
        return try self.process.auth.authenticate(accessToken: issued.pair.accessToken)
    }
}

/// A small seeded generator, so that a failing history can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
