import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

/// Dry runs of the operator actions on both databases: a dry run writes nothing (no log row, no audit row, no
/// state, nothing in the index) and its counts are what the real action then does, measured two ways — by the
/// store's live-session rule and by what the index accepts — and, for access tokens, by the tokens held.
@Suite struct DryRunStoreTests {
    @Test(arguments: TestBackend.all) func aDryRunOfRevokingOneUserCountsWhatTheRevokeCuts(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let preview = try await world.rehearse(.revokeUsers([world.ann]), in: process) {
                let revoked = try await process.auth.revokeUsers([world.ann], actorId: nil, reason: nil, origin: .commandLine)
                #expect(revoked == 1)
            }
            // Two live sessions (one signed out, not counted); one of them refreshed within the access-token lifetime.
            #expect(preview == RevocationPreview(accounts: 1, sessions: 2, accessTokens: 1))
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunOfRevokingSeveralUsersCountsEachAccountOnce(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let named = [world.ann, world.bob, world.frank, world.ann]
            var revoked = 0
            let preview = try await world.rehearse(.revokeUsers(named), in: process) {
                revoked = try await process.auth.revokeUsers(named, actorId: nil, reason: "incident", origin: .commandLine)
            }
            #expect(preview.accounts == revoked)
            #expect(preview == RevocationPreview(accounts: 3, sessions: 3, accessTokens: 1))
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunOfRevokeAllCountsEveryAccountAndEveryLiveSession(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let preview = try await world.rehearse(.revokeAll, in: process) {
                _ = try await process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
            }
            // The deactivated account's and the expired session are not live; the accounts are all six.
            #expect(preview == RevocationPreview(accounts: 6, sessions: 4, accessTokens: 2))
            #expect(preview.accounts == (try await process.store.users(matching: nil, afterEmail: nil, limit: 1000)).count)
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunOfDeactivationLeavesTheAccountActive(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let preview = try await world.rehearse(.deactivate(world.dee), in: process) {
                let user = try await process.store.user(id: world.dee)
                #expect(user?.isActive == true, "the dry run left the account active")
                #expect(try await process.auth.deactivate(userId: world.dee, actorId: nil, reason: nil, origin: .commandLine).isActive == false)
            }
            #expect(preview == RevocationPreview(accounts: 1, sessions: 1, accessTokens: 1))
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunOfUndoingAUsersRevokeCountsOnlyTheSessionsItRevives(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            var world = world
            try await process.auth.revokeUsers([world.ann], actorId: nil, reason: nil, origin: .commandLine)
            // Signed in after the cut: live already, so the undo revives nothing of it.
            world.held.append(World.Held(pair: try await process.signUpAndIn("ann@example.org"), openedAt: world.clock.now()))
            let preview = try await world.rehearse(.unrevoke(.subject(world.ann)), in: process, revives: true) {
                try await process.auth.unrevoke(.subject(world.ann), actorId: nil, reason: nil, origin: .commandLine)
            }
            #expect(preview == RevocationPreview(accounts: 1, sessions: 2, accessTokens: 1))
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunOfUndoingRevokeAllLeavesOutSessionsOtherCutsStillRefuse(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            var world = world
            _ = try await process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
            // Bob is cut on his own too, and Dee signs in again: neither session comes back with the undo.
            try await process.auth.revokeUsers([world.bob], actorId: nil, reason: nil, origin: .commandLine)
            world.held.append(World.Held(pair: try await process.signUpAndIn("dee@example.org"), openedAt: world.clock.now()))
            let preview = try await world.rehearse(.unrevoke(.global), in: process, revives: true) {
                try await process.auth.unrevoke(.global, actorId: nil, reason: nil, origin: .commandLine)
            }
            #expect(preview == RevocationPreview(accounts: 6, sessions: 3, accessTokens: 2))
        }
    }

    /// Attack: an undo that reaches past a cut made for security. The dry run must refuse wherever the undo does,
    /// with the same error, so that it never reports a revival the real run would not make — and, unlike the undo,
    /// without writing its `UNREVOKE_REFUSED` row.
    @Test(arguments: TestBackend.all) func aDryRunOfAnUndoIsRefusedExactlyWhereTheUndoIs(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            var world = world
            /// `audited`: the real refusal writes an `UNREVOKE_REFUSED` row (all but an unknown account's do).
            func refusal(_ target: UnrevokeRequest.Target, is expected: AuthError, audited: Bool = true) async throws {
                let before = try await StoredState.read(process.store)
                let dry = await Self.thrown { try await process.auth.dryRun(.unrevoke(target)) }
                #expect(dry == expected)
                #expect(try await StoredState.read(process.store) == before, "a refused dry run writes nothing")
                let real = await Self.thrown { try await process.auth.unrevoke(target, actorId: nil, reason: nil, origin: .commandLine) }
                #expect(real == dry)
                let refused = try await process.store.auditEvents(AuditQuery(event: .unrevokeRefused, limit: 500))
                #expect(refused.count == before.audit.count(where: { $0.event == AuditEventName.unrevokeRefused.rawValue }) + (audited ? 1 : 0))
            }
            try await refusal(.subject(world.frank), is: .nothingToUndo)
            try await refusal(.global, is: .nothingToUndo)
            try await refusal(.subject(world.cy), is: .accountInactiveCannotBeUnrevoked)
            try await refusal(.subject(UUID()), is: .userNotFound, audited: false)

            // Bob signs out everywhere: final, and so is every undo behind it.
            let bob = try await process.signUpAndIn("bob@example.org")
            try await process.auth.logoutAll(try process.auth.authenticate(accessToken: bob.accessToken), origin: RequestOrigin())
            try await refusal(.subject(world.bob), is: .cutIsFinal(cause: .signOutEverywhere))

            // Ann: an operator's revoke, a password change (final), another operator's revoke. The first undo is
            // rehearsed and done; the next is refused by the password change, dry or not.
            try await process.auth.revokeUsers([world.ann], actorId: nil, reason: nil, origin: .commandLine)
            let ann = try await process.signUpAndIn("ann@example.org")
            let rekeyed = try await process.auth.changePassword(
                try process.auth.authenticate(accessToken: ann.accessToken), currentPassword: "correct horse", newPassword: "battery staple",
                origin: RequestOrigin()
            )
            world.held.append(World.Held(pair: rekeyed, openedAt: world.clock.now()))
            try await process.auth.revokeUsers([world.ann], actorId: nil, reason: nil, origin: .commandLine)
            _ = try await world.rehearse(.unrevoke(.subject(world.ann)), in: process, revives: true) {
                try await process.auth.unrevoke(.subject(world.ann), actorId: nil, reason: nil, origin: .commandLine)
            }
            try await refusal(.subject(world.ann), is: .cutIsFinal(cause: .passwordChanged))
        }
    }

    @Test(arguments: TestBackend.all) func aDryRunNamingAnUnknownAccountIsRefusedAndWritesNothing(_ backend: TestBackend) async throws {
        try await World.with(backend) { world, process in
            let before = try await StoredState.read(process.store)
            let named = [world.ann, UUID()]
            for action in [RevocationPreview.Action.revokeUsers(named), .deactivate(UUID())] {
                #expect(await Self.thrown { try await process.auth.dryRun(action) } == .userNotFound)
            }
            #expect(await Self.thrown { try await process.auth.revokeUsers(named, actorId: nil, reason: nil, origin: .commandLine) } == .userNotFound)
            #expect(try await StoredState.read(process.store) == before)
            #expect(try await process.auth.dryRun(.revokeUsers([])) == RevocationPreview(accounts: 0, sessions: 0, accessTokens: 0))
        }
    }

    /// The `AuthError` the body throws, if any.
    static func thrown(_ body: () async throws -> Any) async -> AuthError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error as? AuthError
        }
    }
}

/// Six accounts in every state a count must tell apart, on a pinned clock:
/// - ann: two live sessions (one refreshed just now, one whose access token expired) and one signed out;
/// - bob: one live session whose access token expired;
/// - cy: deactivated, with a session; dee: one live session signed in just now;
/// - eve: one session, expired (opened 31 days ago); frank: no session at all.
struct World {
    /// The latest pair of a session, and when the session was opened.
    struct Held {
        var pair: TokenPair
        var openedAt: Date
    }

    let clock: ManualWallClock
    let ann: UUID, bob: UUID, cy: UUID, dee: UUID, eve: UUID, frank: UUID
    var held: [Held]
    var users: [UUID] { [self.ann, self.bob, self.cy, self.dee, self.eve, self.frank] }

    static func with(_ backend: TestBackend, _ body: (World, TestProcess) async throws -> Void) async throws {
        try await TestDatabase.with(backend) { database in
            let clock = ManualWallClock(Date())
            try await database.withProcess(clock: clock) { process in
                try await body(try await Self.build(process, clock: clock), process)
            }
        }
    }

    private static func build(_ process: TestProcess, clock: ManualWallClock) async throws -> World {
        var held: [Held] = []
        func signIn(_ email: String) async throws -> TokenPair {
            let pair = try await process.signUpAndIn(email)
            held.append(Held(pair: pair, openedAt: clock.now()))
            return pair
        }
        let eve = try await signIn("eve@example.org")
        clock.advance(by: .seconds(31 * 86_400))
        let ann = try await signIn("ann@example.org")
        let refreshed = try await signIn("ann@example.org")
        let signedOut = try await signIn("ann@example.org")
        try await process.auth.logout(try process.auth.authenticate(accessToken: signedOut.accessToken), origin: RequestOrigin())
        let bob = try await signIn("bob@example.org")
        let cy = try await signIn("cy@example.org")
        _ = try await process.auth.deactivate(userId: cy.user.id, actorId: nil, reason: nil, origin: .commandLine)
        let frank = try await process.auth.register(email: "frank@example.org", password: "correct horse", origin: RequestOrigin())
        // Twenty minutes on, every access token so far has expired (15 minutes and 30 s of leeway).
        clock.advance(by: .seconds(20 * 60))
        let index = try #require(held.firstIndex { $0.pair.sessionId == refreshed.sessionId })
        held[index].pair = try await process.auth.refresh(refreshToken: refreshed.refreshToken, origin: RequestOrigin())
        let dee = try await signIn("dee@example.org")
        return World(
            clock: clock, ann: ann.user.id, bob: bob.user.id, cy: cy.user.id, dee: dee.user.id, eve: eve.user.id, frank: frank.id, held: held
        )
    }

    /// Runs the dry run, checks that it wrote nothing, runs `action`, and checks the dry run's counts against what
    /// changed: sessions live by the store's rule and accepted by the index, and access tokens held, each set
    /// moving one way only (cut, or for an un-revoke, revived).
    func rehearse(
        _ action: RevocationPreview.Action, in process: TestProcess, revives: Bool = false, _ real: () async throws -> Void
    ) async throws -> RevocationPreview {
        let stored = try await StoredState.read(process.store)
        let index = IndexState(process.auth.index, now: self.clock.now())
        let before = try await self.observe(process)

        let preview = try await process.auth.dryRun(action)
        #expect(try await StoredState.read(process.store) == stored, "a dry run writes no log row, audit row or state")
        #expect(IndexState(process.auth.index, now: self.clock.now()) == index, "a dry run leaves the index as it was")
        #expect(try await self.observe(process) == before)

        try await real()
        let after = try await self.observe(process)
        let (gone, came) = (before.subtracting(after), after.subtracting(before))
        let (changed, wrongWay) = revives ? (came, gone) : (gone, came)
        #expect(wrongWay == Observation(), "the action moved nothing the other way")
        #expect(preview.sessions == changed.liveInStore.count)
        #expect(preview.sessions == changed.acceptedByIndex.count)
        #expect(preview.accessTokens == changed.acceptedTokens.count)
        return preview
    }

    /// What is live now, seen three ways.
    struct Observation: Equatable {
        var liveInStore: Set<UUID> = []
        var acceptedByIndex: Set<UUID> = []
        /// Sessions whose latest held access token is accepted.
        var acceptedTokens: Set<UUID> = []

        func subtracting(_ other: Observation) -> Observation {
            Observation(
                liveInStore: self.liveInStore.subtracting(other.liveInStore),
                acceptedByIndex: self.acceptedByIndex.subtracting(other.acceptedByIndex),
                acceptedTokens: self.acceptedTokens.subtracting(other.acceptedTokens)
            )
        }
    }

    func observe(_ process: TestProcess) async throws -> Observation {
        let now = self.clock.now()
        var observation = Observation()
        for user in self.users {
            observation.liveInStore.formUnion(try await process.store.liveSessions(userId: user, now: now).map(\.id))
        }
        let lifetime = TokenSettings().refreshTokenTTL.timeInterval
        for session in self.held {
            let claims = session.pair.claims
            let accepted = process.auth.index.isSessionAccepted(
                sessionId: session.pair.sessionId, userId: session.pair.user.id, version: claims.ver, epoch: claims.epoch
            )
            if accepted && now < session.openedAt.addingTimeInterval(lifetime) { observation.acceptedByIndex.insert(session.pair.sessionId) }
            if await process.accepts(session.pair) { observation.acceptedTokens.insert(session.pair.sessionId) }
        }
        return observation
    }
}

/// Everything a dry run must not write, read straight from the tables.
struct StoredState: Equatable {
    var users: [String]
    var global: [String]
    var sessions: [String]
    var revocations: [Int64]
    var audit: [AuditRow]

    struct AuditRow: Equatable {
        var id: Int64
        var event: String
    }

    static func read(_ store: SQLAuthStore) async throws -> StoredState {
        try await store.database.read { db in
            let users = try await db.raw(
                "SELECT id, is_active, token_version, accepted_from_version, password_hash, updated_at FROM users ORDER BY id"
            ).all().map { row in
                [
                    try row.decode(column: "id", as: String.self), "\(try row.decode(column: "is_active", as: Int.self))",
                    "\(try row.decode(column: "token_version", as: Int64.self))",
                    "\(try row.decode(column: "accepted_from_version", as: Int64.self))",
                    try row.decode(column: "password_hash", as: String.self), "\(try row.decode(column: "updated_at", as: Int64.self))",
                ].joined(separator: "|")
            }
            let global = try await db.raw("SELECT epoch, accepted_epoch FROM global_state").all().map { row in
                "\(try row.decode(column: "epoch", as: Int64.self))|\(try row.decode(column: "accepted_epoch", as: Int64.self))"
            }
            let sessions = try await db.raw(
                "SELECT id, refresh_token_hash, last_seen_at, token_version, epoch, invalidated_at FROM sessions ORDER BY id"
            ).all().map { row in
                [
                    try row.decode(column: "id", as: String.self), try row.decode(column: "refresh_token_hash", as: String.self),
                    "\(try row.decode(column: "last_seen_at", as: Int64.self))", "\(try row.decode(column: "token_version", as: Int64.self))",
                    "\(try row.decode(column: "epoch", as: Int64.self))", "\(try row.decode(column: "invalidated_at", as: Int64?.self) ?? -1)",
                ].joined(separator: "|")
            }
            let revocations = try await db.raw("SELECT seq FROM revocations ORDER BY seq").all().map { try $0.decode(column: "seq", as: Int64.self) }
            let audit = try await db.raw("SELECT id, event FROM audit_events ORDER BY id").all().map {
                AuditRow(id: try $0.decode(column: "id", as: Int64.self), event: try $0.decode(column: "event", as: String.self))
            }
            return StoredState(users: users, global: global, sessions: sessions, revocations: revocations, audit: audit)
        }
    }
}

/// What the index holds, for comparing before and after.
struct IndexState: Equatable {
    var entries: [RevocationEntry]
    var lastAppliedSeq: Int64
    var sessions: Int
    var subjects: Int
    var globalEpoch: Int64

    init(_ index: RevocationIndex, now: Date) {
        self.entries = index.liveEntries(now: now).sorted { $0.seq < $1.seq }
        self.lastAppliedSeq = index.lastAppliedSeq
        let counts = index.counts
        (self.sessions, self.subjects, self.globalEpoch) = (counts.sessions, counts.subjects, counts.globalEpoch)
    }
}
