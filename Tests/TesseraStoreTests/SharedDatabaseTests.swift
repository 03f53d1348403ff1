import Foundation
import SQLKit
import Synchronization
import Testing
import TesseraCore

@testable import TesseraStore

/// What several instances on one database need, tried on both databases where it applies, and on PostgreSQL
/// (the only one with concurrent writers) for what only it can get wrong.
@Suite struct SharedDatabaseTests {
    /// Attack stopped (against a follower that reads `seq > last`): a revocation whose transaction took its `seq`
    /// early and committed late is skipped by every other instance for good. The snapshot-diff cursor reads it.
    @Test(arguments: TestBackend.all.filter { $0 == .postgres })
    func aRevocationThatCommitsAfterALaterOneIsStillRead(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { writer in
                let ann = try await writer.signUpAndIn("ann@example.org")
                let bob = try await writer.signUpAndIn("bob@example.org")
                try await database.withProcess { reader in
                    #expect(await reader.accepts(ann))
                    #expect(await reader.accepts(bob))
                    let slowCanCommit = OneTimeSignal()
                    let slowHasWritten = OneTimeSignal()
                    // Ann's sign-out takes its seq first and commits last.
                    let slow = Task {
                        try await writer.store.database.transaction { db in
                            _ = try await SQLAuthStore.appendEntry(
                                .session(id: ann.sessionId, until: Date().addingTimeInterval(900)), cause: .signOut, at: Date(), actorId: nil,
                                reason: "logout", on: db
                            )
                            slowHasWritten.fire()
                            await slowCanCommit.wait()
                        }
                    }
                    await slowHasWritten.wait()
                    try await writer.auth.logout(try writer.auth.authenticate(accessToken: bob.accessToken), origin: RequestOrigin())
                    try await reader.follower.catchUp()
                    #expect(await !reader.accepts(bob))
                    #expect(await reader.accepts(ann), "Ann's row is not committed yet")
                    slowCanCommit.fire()
                    try await slow.value
                    try await reader.follower.catchUp()
                    #expect(await !reader.accepts(ann), "the row with the smaller seq, committed later, was skipped")
                    let log = try await reader.store.revocations(after: 0, limit: 10)
                    #expect(log.count == 2)
                }
            }
        }
    }

    /// Many sign-outs at once, some of one session twice, and one that the database cannot store (a NUL in its
    /// audit row's user agent: PostgreSQL text cannot hold one): on PostgreSQL they commit in batches, and still each
    /// sign-out is answered with its own log row, every one is in the log and the audit trail exactly once, every
    /// signed-out session is refused by another instance, and the one bad write fails alone.
    @Test(arguments: TestBackend.all)
    func signOutsAtOnceEachCommitTheirOwnRowsAndABadOneFailsAlone(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { writer in
                var pairs: [TokenPair] = []
                for device in 0..<24 { pairs.append(try await writer.signUpAndIn("ann\(device % 3)@example.org", device: "phone \(device)")) }
                let verified = try pairs.map { try writer.auth.authenticate(accessToken: $0.accessToken) }
                let before = try await writer.store.revocations(after: 0, limit: 1000).count
                // Each session signed out twice at once (a double tap), and one poisoned request among them.
                let requests: [RevocationRequest] = (verified + verified).map { caller in
                    let now = Date()
                    return RevocationRequest(
                        target: .session(caller.sessionId, until: now.addingTimeInterval(900)), cause: .signOut, actorId: caller.userId, reason: "logout",
                        at: now,
                        audit: [
                            AuditRecord(
                                at: now, event: .authLogout, actorId: caller.userId, subjectId: caller.userId, sessionId: caller.sessionId,
                                origin: RequestOrigin(ip: "127.0.0.1", userAgent: "test"), details: ["event": "logout"]
                            )
                        ]
                    )
                }
                var poisoned = requests[5]
                poisoned.audit[0].userAgent = "bad\u{0}agent"
                let outcomes = await withTaskGroup(of: (Int, Result<RevocationOutcome, any Error>).self) { group in
                    for (index, request) in ([poisoned] + requests).enumerated() {
                        group.addTask { (index, await outcome { try await writer.store.revoke(request) }) }
                    }
                    var all: [(Int, Result<RevocationOutcome, any Error>)] = []
                    for await outcome in group { all.append(outcome) }
                    return all.sorted { $0.0 < $1.0 }.map(\.1)
                }
                let poisonedOutcome = outcomes[0]
                var answered: [Int64: UUID] = [:]
                for (request, outcome) in zip(requests, outcomes.dropFirst()) {
                    guard case .success(let revoked) = outcome, case .session(let sessionId, _) = request.target else { continue }
                    for entry in revoked.entries { answered[entry.seq] = sessionId }
                }
                let seqs = Array(answered.keys)
                #expect(answered.count == requests.count, "every good sign-out is acknowledged, each with a log row of its own")
                let log = try await writer.store.revocations(after: 0, limit: 1000)
                for entry in log {
                    guard let sessionId = answered[entry.seq] else { continue }
                    guard case .session(let id, _) = entry.kind else {
                        Issue.record("a sign-out was answered with a \(entry.kind.name) row")
                        continue
                    }
                    #expect(id == sessionId, "each caller is answered with its own row, not another's")
                }
                if case .success = poisonedOutcome {
                    // SQLite stores the NUL: then it is one more row.
                    #expect(backend == .sqlite)
                    #expect(log.count == before + requests.count + 1)
                } else {
                    #expect(backend == .postgres)
                    #expect(log.count == before + requests.count, "the bad write left nothing behind")
                }
                #expect(Set(seqs).isSubset(of: Set(log.map(\.seq))), "an acknowledged row is in the log")
                let signOuts = try await writer.store.database.read { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM audit_events WHERE event = \(bind: AuditEventName.authLogout.rawValue)").first()?
                        .decode(column: "n", as: Int.self)
                }
                #expect(signOuts == log.count - before, "one audit row per log row")
                try await database.withProcess { reader in
                    for pair in pairs { #expect(await !reader.accepts(pair)) }
                }
            }
        }
    }

    /// The batched statement itself, with several sign-outs (one session twice): one call writes every row, each
    /// `seq` answers its own sign-out, and the session keeps the first sign-out's time. (The test above would pass
    /// even if every batch failed and its sign-outs were written one by one; this one would not.)
    @Test(arguments: TestBackend.all.filter { $0 == .postgres })
    func aBatchOfSignOutsIsWrittenByOneStatement(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { writer in
                let pairs = [
                    try await writer.signUpAndIn("ann@example.org", device: "phone"), try await writer.signUpAndIn("bob@example.org", device: "laptop"),
                ]
                let callers = try pairs.map { try writer.auth.authenticate(accessToken: $0.accessToken) }
                let before = try await writer.store.revocations(after: 0, limit: 100).count
                func signOut(_ caller: VerifiedAccessToken, at millis: Int64) -> SQLAuthStore.SignOut {
                    SQLAuthStore.SignOut(
                        session_id: caller.sessionId.lowercasedString, until_at: millis + 900_000, revoked_at: millis, reason: "logout", cause: "sign_out",
                        audit_at: millis, event: AuditEventName.authLogout.rawValue, audit_actor_id: caller.userId.lowercasedString,
                        subject_id: caller.userId.lowercasedString, audit_session_id: caller.sessionId.lowercasedString, details: "{}"
                    )
                }
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let batch = [signOut(callers[0], at: now), signOut(callers[1], at: now + 1), signOut(callers[0], at: now + 2)]
                let seqs = try await SQLAuthStore.signOutTogether(batch, on: writer.store.database)
                #expect(seqs.count == 3 && Set(seqs).count == 3)
                let log = try await writer.store.revocations(after: 0, limit: 100)
                #expect(log.count == before + 3)
                for (seq, sent) in zip(seqs, batch) {
                    let entry = try #require(log.first { $0.seq == seq })
                    guard case .session(let id, _) = entry.kind else {
                        Issue.record("not a session row")
                        continue
                    }
                    #expect(id.lowercasedString == sent.session_id)
                    #expect(Column.millis(entry.revokedAt) == sent.revoked_at)
                }
                let invalidatedAt = try await writer.store.database.read { db in
                    try await db.raw("SELECT invalidated_at FROM sessions WHERE id = \(bind: callers[0].sessionId.lowercasedString)").first()?
                        .decode(column: "invalidated_at", as: Int64.self)
                }
                #expect(invalidatedAt == now, "a session signed out twice in one batch keeps the first time")
            }
        }
    }

    /// Refreshes of one refresh token at once by one client (two tabs, a phone that retried; on PostgreSQL through two
    /// instances): every one is answered with the same successor and the session lives on — none is taken for a
    /// replay. On SQLite all come to one process (one file is one server; two processes writing it at once under
    /// load answer "busy", by design).
    @Test(arguments: TestBackend.all)
    func refreshesOfOneTokenAtOnceByOneClientAllGetTheSameSuccessor(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { one in
                try await database.withProcess { other in
                    let two = backend == .postgres ? other : one
                    for round in 0..<3 {
                        let pair = try await one.signUpAndIn("ann@example.org", device: "phone \(round)")
                        let origin = RequestOrigin(userAgent: "TesseraPhone/1.0")
                        let outcomes = await withTaskGroup(of: Result<TokenPair, any Error>.self) { group in
                            for index in 0..<20 {
                                let process = index % 2 == 0 ? one : two
                                group.addTask { await outcome { try await process.auth.refresh(refreshToken: pair.refreshToken, origin: origin) } }
                            }
                            return await group.reduce(into: []) { $0.append($1) }
                        }
                        let pairs = outcomes.compactMap { try? $0.get() }
                        #expect(pairs.count == 20, "every presentation by the same client succeeds: \(outcomes.filter { (try? $0.get()) == nil })")
                        #expect(Set(pairs.map(\.refreshToken)).count == 1, "one successor for all")
                        #expect(Set(pairs.map(\.sessionId)) == [pair.sessionId])
                        let successor = try #require(pairs.first)
                        #expect(await one.accepts(successor))
                        let next = try await two.auth.refresh(refreshToken: successor.refreshToken, origin: origin)
                        #expect(await one.accepts(next), "the session lives on")
                    }
                    #expect(try await one.store.auditEvents(AuditQuery(event: .tokenReuseDetected)).isEmpty)
                }
            }
        }
    }

    /// Attack stopped: two refreshes of one token at once by two clients (a thief racing the owner; on PostgreSQL
    /// through two instances) — at most one rotates, the other is reuse and the session goes; never a constraint
    /// violation or a 500.
    @Test(arguments: TestBackend.all)
    func twoRefreshesOfOneTokenAtOnceByTwoClientsNeverBothWin(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { one in
                try await database.withProcess { other in
                    let two = backend == .postgres ? other : one
                    for round in 0..<5 {
                        let pair = try await one.signUpAndIn("ann@example.org", device: "phone \(round)")
                        async let first = outcome { try await one.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin(userAgent: "a")) }
                        async let second = outcome { try await two.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin(userAgent: "b")) }
                        let outcomes = await [first, second]
                        let rotated = outcomes.filter { if case .success = $0 { true } else { false } }
                        // One wins; the loser's reuse alarm ends the session. If that landed in this process's index
                        // before the winner checked it there, the winner is refused too: neither gets tokens for a
                        // session that has ended, which is the safe answer (seen under a loaded parallel run).
                        #expect(rotated.count <= 1, "at most one refresh wins: \(outcomes)")
                        try await one.follower.catchUp()
                        #expect(await !one.accepts(pair), "the session has ended")
                        for case .failure(let error) in outcomes {
                            #expect(error is AuthError, "the loser is told why (\(error)), not a database error")
                        }
                    }
                }
            }
        }
    }

    /// Attack stopped: the same client's retry is a retry only for the reuse interval (10 s by default); a spent token
    /// presented after it is a replay, on every instance, even while its successor is still unused.
    @Test(arguments: TestBackend.all)
    func aSpentTokenPresentedAfterTheIntervalIsReuseOnEveryInstance(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let clock = ManualWallClock(Date())
            try await database.withProcess(clock: clock) { one in
                try await database.withProcess(clock: clock) { two in
                    let origin = RequestOrigin(userAgent: "TesseraPhone/1.0")
                    let pair = try await one.signUpAndIn()
                    let first = try await one.auth.refresh(refreshToken: pair.refreshToken, origin: origin)
                    clock.advance(by: .seconds(9))
                    let retried = try await two.auth.refresh(refreshToken: pair.refreshToken, origin: origin)
                    #expect(retried.refreshToken == first.refreshToken, "within the interval another instance derives the same successor")
                    clock.advance(by: .seconds(1))
                    await #expect(throws: AuthError.invalidRefreshToken) {
                        try await two.auth.refresh(refreshToken: pair.refreshToken, origin: origin)
                    }
                    try await one.follower.catchUp()
                    #expect(await !one.accepts(first))
                    await #expect(throws: AuthError.invalidRefreshToken) {
                        try await one.auth.refresh(refreshToken: first.refreshToken, origin: origin)
                    }
                    let reuse = try await one.store.auditEvents(AuditQuery(event: .tokenReuseDetected))
                    #expect(reuse.map { $0.details["reason"] } == ["after_reuse_interval"])
                    // Only hashes: neither refresh token, nor the user agent, is in what the database keeps of them.
                    let kept = try await one.store.database.read { db in
                        try await db.raw("SELECT token_hash, user_agent_hash, client_nonce_hash FROM spent_refresh_tokens").all().map { row in
                            try ["token_hash", "user_agent_hash", "client_nonce_hash"].map { try row.decode(column: $0, as: String?.self) ?? "" }
                                .joined()
                        }
                    }
                    #expect(kept.count == 1)
                    for secret in [pair.refreshToken, first.refreshToken, "TesseraPhone"] { #expect(!kept.joined().contains(secret)) }
                }
            }
        }
    }

    /// Two registrations of one address at once (two instances): one account, and the other is told the address
    /// is taken.
    @Test(arguments: TestBackend.all)
    func twoRegistrationsOfOneAddressAtOnceMakeOneAccount(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { one in
                try await database.withProcess { other in
                    let two = backend == .postgres ? other : one
                    async let first = outcome { try await one.auth.register(email: "ann@example.org", password: "correct horse", origin: RequestOrigin()) }
                    async let second = outcome { try await two.auth.register(email: "Ann@example.org", password: "correct horse", origin: RequestOrigin()) }
                    let outcomes = await [first, second]
                    #expect(outcomes.filter { if case .success = $0 { true } else { false } }.count == 1)
                    for case .failure(let error) in outcomes { #expect(error as? AuthError == .emailTaken) }
                }
            }
        }
    }

    /// Attack stopped: an attacker spreading password guesses over several instances gets the limit once, not
    /// once per instance. The counts live in the database.
    @Test(arguments: TestBackend.all)
    func failedSignInsAreCountedOnceForEveryInstance(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let one = SQLFailureCounter(database: process.store.database)
                let two = SQLFailureCounter(database: process.store.database)
                let now = Date()
                for index in 0..<6 {
                    let counter = index % 2 == 0 ? one : two
                    try await counter.record("account:ann|1.2.3.4", at: now.addingTimeInterval(Double(index)), keepingAtMost: 4, window: .seconds(900))
                }
                let seen = try await one.failures(for: "account:ann|1.2.3.4", since: now.addingTimeInterval(-1))
                #expect(seen.count == 4, "at most the latest four are kept, and both instances' failures count")
                #expect(try await two.failures(for: "account:ann|1.2.3.4", since: now.addingTimeInterval(-1)) == seen)
                #expect(try await two.failures(for: "account:bob|1.2.3.4", since: now.addingTimeInterval(-1)).isEmpty)
                try await two.reset("account:ann|1.2.3.4")
                #expect(try await one.failures(for: "account:ann|1.2.3.4", since: now.addingTimeInterval(-1)).isEmpty)
                // Only a hash of the key is stored: no address or account name in the table.
                let stored = try await process.store.database.read { db in
                    try await db.raw("SELECT key_hash FROM sign_in_failures").all().map { try $0.decode(column: "key_hash", as: String.self) }
                }
                #expect(stored.allSatisfy { !$0.contains("ann") })
            }
        }
    }

    /// A cursor from another database (a restore, a failover) is not trusted: the follower reads the whole log
    /// and replaces its index, dropping what the new database no longer has.
    @Test(arguments: TestBackend.all)
    func aCursorFromAnotherDatabaseMakesTheFollowerReloadEverything(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn()
                try await process.auth.logout(try process.auth.authenticate(accessToken: ann.accessToken), origin: RequestOrigin())
                try await process.follower.catchUp()
                let cursor = try #require(process.follower.cursor)
                await #expect(throws: RevocationLogCursorInvalid.self) {
                    try await process.store.readRevocationLog(
                        after: RevocationLogCursor(cluster: "another", position: cursor.position), pageSize: 10, onPage: { _ in }
                    )
                }
                // An index that holds a cut the database does not (as after a restore to an earlier point) …
                process.auth.index.apply([
                    RevocationEntry(seq: 999, kind: .global(epoch: 7), revokedAt: Date(), actorId: nil, reason: nil)
                ])
                #expect(process.auth.index.counts.globalEpoch == 7)
                // … is replaced whole when the follower finds itself on another database.
                let replaced = RevocationLogFollower(store: ForeignCursorStore(base: process.store), index: process.auth.index, logger: TestDatabase.logger)
                try await replaced.catchUp()
                try await replaced.catchUp()
                #expect(process.auth.index.counts.globalEpoch == 0)
                #expect(process.auth.index.counts.sessions == 1)
            }
        }
    }

    /// Moving up: everything copied from one database to a new one, tokens issued before keep working against it,
    /// revoked ones stay revoked, refresh tokens still refresh; copying into a non-empty database is refused.
    @Test(arguments: TestBackend.all)
    func aCopyKeepsEveryTokenAsItWas(_ backend: TestBackend) async throws {
        try await TestDatabase.with(.sqlite) { source in
            let (ann, bob, cy) = try await source.withProcess { process in
                let ann = try await process.signUpAndIn("ann@example.org")
                let bob = try await process.signUpAndIn("bob@example.org")
                let cy = try await process.signUpAndIn("cy@example.org")
                try await process.auth.revokeUsers([bob.user.id], actorId: nil, reason: "lost phone", origin: .commandLine)
                try await process.auth.logout(try process.auth.authenticate(accessToken: cy.accessToken), origin: RequestOrigin())
                _ = try await process.auth.refresh(refreshToken: ann.refreshToken, origin: RequestOrigin())
                return (ann, bob, cy)
            }
            try await TestDatabase.with(backend) { target in
                let from = try await source.openHandle()
                let to = try await target.openHandle()
                try await Migrator(database: to, logger: TestDatabase.logger).migrate()
                let report = try await DatabaseCopy(from: from, to: to, logger: TestDatabase.logger).run()
                #expect(report.rows["users"] == 3)
                #expect(report.rows["sessions"] == 3)
                #expect((report.rows["revocations"] ?? 0) >= 2)
                #expect((report.rows["audit_events"] ?? 0) >= 6)
                await #expect(throws: CopyError.self) { try await DatabaseCopy(from: from, to: to, logger: TestDatabase.logger).run() }
                await from.close()
                await to.close()
                try await target.withProcess { process in
                    #expect(await process.accepts(ann), "a live token issued before the copy works after it")
                    #expect(await !process.accepts(bob), "a revoked user stays revoked")
                    #expect(await !process.accepts(cy), "a signed-out session stays signed out")
                    // Ann's first refresh token was spent before the copy: presenting it again is still caught as reuse.
                    await #expect(throws: AuthError.self) { try await process.auth.refresh(refreshToken: ann.refreshToken, origin: RequestOrigin()) }
                    // New rows continue the numbering after the copied ones.
                    let fresh = try await process.signUpAndIn("dee@example.org")
                    try await process.auth.logout(try process.auth.authenticate(accessToken: fresh.accessToken), origin: RequestOrigin())
                    let log = try await process.store.revocations(after: 0, limit: 100)
                    #expect(Set(log.map(\.seq)).count == log.count)
                }
            }
        }
    }
}

/// A store whose log reads say the database changed once (as after a failover), then behave.
private final class ForeignCursorStore: AuthStore, @unchecked Sendable {
    let base: SQLAuthStore
    private let first = Mutex(true)
    init(base: SQLAuthStore) { self.base = base }

    func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor {
        let next = try await self.base.readRevocationLog(after: cursor, pageSize: pageSize, onPage: onPage)
        let foreign = self.first.withLock { first -> Bool in
            defer { first = false }
            return first
        }
        // The first answer hands out a cursor of another cluster; the next read must then reload.
        return foreign ? RevocationLogCursor(cluster: "old-" + next.cluster, position: next.position) : next
    }

    func watchRevocations(wake: @escaping @Sendable () -> Void) async {}
    func createUser(_ user: NewUser, audit: AuditRecord) async throws -> User { try await self.base.createUser(user, audit: audit) }
    func user(id: UUID) async throws -> User? { try await self.base.user(id: id) }
    func users(ids: [UUID]) async throws -> [User] { try await self.base.users(ids: ids) }
    func credentials(normalizedEmail: String) async throws -> UserCredentials? { try await self.base.credentials(normalizedEmail: normalizedEmail) }
    func openSession(_ session: NewSession, audit: AuditRecord) async throws -> SessionGrant { try await self.base.openSession(session, audit: audit) }
    func rotateRefreshToken(_ rotation: RefreshRotation) async throws -> RefreshOutcome { try await self.base.rotateRefreshToken(rotation) }
    func refreshSuccessorSecret() async throws -> String { try await self.base.refreshSuccessorSecret() }
    func liveSessions(userId: UUID, now: Date) async throws -> [Session] { try await self.base.liveSessions(userId: userId, now: now) }
    func revoke(_ request: RevocationRequest) async throws -> RevocationOutcome { try await self.base.revoke(request) }
    func revocations(after seq: Int64, limit: Int) async throws -> [RevocationEntry] { try await self.base.revocations(after: seq, limit: limit) }
    func session(refreshTokenHash: String, now: Date) async throws -> SessionGrant? { try await self.base.session(refreshTokenHash: refreshTokenHash, now: now) }
    func unrevoke(_ request: UnrevokeRequest) async throws -> RevocationOutcome { try await self.base.unrevoke(request) }
    func undoableCuts(userIds: [UUID]) async throws -> UndoableCuts { try await self.base.undoableCuts(userIds: userIds) }
    func users(matching search: String?, afterEmail: String?, limit: Int) async throws -> [User] {
        try await self.base.users(matching: search, afterEmail: afterEmail, limit: limit)
    }
    func activate(userId: UUID, audit: AuditRecord) async throws -> User? { try await self.base.activate(userId: userId, audit: audit) }
    func changeRole(_ change: RoleChange) async throws -> RoleChangeOutcome { try await self.base.changeRole(change) }
    func deleteAccount(_ deletion: AccountDeletion) async throws -> RevocationOutcome { try await self.base.deleteAccount(deletion) }
    func deleteAuditEvents(before date: Date) async throws -> Int { try await self.base.deleteAuditEvents(before: date) }
    func deleteExpiredRows(revocationsBefore: Date, sessionsBefore: Date) async throws -> ExpiredRowsDeleted {
        try await self.base.deleteExpiredRows(revocationsBefore: revocationsBefore, sessionsBefore: sessionsBefore)
    }
    func recordAudit(_ record: AuditRecord) async throws { try await self.base.recordAudit(record) }
    func auditEvents(_ query: AuditQuery) async throws -> [AuditRecord] { try await self.base.auditEvents(query) }
    func ping() async throws { try await self.base.ping() }
    func preview(_ action: RevocationPreview.Action, now: Date, accessTokensIssuedAfter: Date) async throws -> RevocationPreview {
        try await self.base.preview(action, now: now, accessTokensIssuedAfter: accessTokensIssuedAfter)
    }
    func revocationHistory(of target: RevocationHistoryTarget) async throws -> [RevocationRecord] { try await self.base.revocationHistory(of: target) }
    func refreshTokenRecord(hash: String) async throws -> RefreshTokenRecord? { try await self.base.refreshTokenRecord(hash: hash) }
    func createAPIToken(_ token: NewAPIToken, audit: AuditRecord) async throws -> APITokenRecord { try await self.base.createAPIToken(token, audit: audit) }
    func apiToken(hash: String) async throws -> APITokenRecord? { try await self.base.apiToken(hash: hash) }
    func apiToken(id: UUID) async throws -> APITokenRecord? { try await self.base.apiToken(id: id) }
    func apiTokens(userId: UUID) async throws -> [APITokenRecord] { try await self.base.apiTokens(userId: userId) }
    func revokeAPIToken(id: UUID, request: RevocationRequest) async throws -> RevocationOutcome? { try await self.base.revokeAPIToken(id: id, request: request) }
    func recordAPITokenUse(_ uses: [UUID: Date]) async throws { try await self.base.recordAPITokenUse(uses) }
}

/// The outcome of an async throwing call, as a value.
func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// Fires once; every waiter, before or after, goes on.
final class OneTimeSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = self.state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
