import Foundation
import Synchronization
import Testing
import TesseraCore

@testable import TesseraStore

@Suite struct AdministrationTests {
    @Test(arguments: TestBackend.all) func unrevokeAppendsARowAndNeverEditsHistory(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                try await process.auth.revokeUsers([pair.user.id], actorId: nil, reason: "first", origin: .commandLine)
                let before = try await process.store.revocations(after: 0, limit: 100)
                try await process.auth.unrevoke(.subject(pair.user.id), actorId: nil, reason: "oops", origin: .commandLine)
                let after = try await process.store.revocations(after: 0, limit: 100)
                #expect(Array(after.prefix(before.count)) == before)
                #expect(after.count == before.count + 1)
                #expect(after.last?.kind == .subject(userId: pair.user.id, acceptedFromVersion: 0))
                #expect(await process.accepts(pair))
            }
        }
    }

    /// The log has a fast reader for SQLite and a generic one through SQLKit; both map rows through one
    /// function and must read the same entries, of every kind.
    @Test(arguments: TestBackend.all) func bothLogReadersReadTheSameEntries(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn()
                let bob = try await process.signUpAndIn("bob@example.org")
                try await process.auth.revoke(token: ann.accessToken, clientId: nil, origin: .commandLine)
                try await process.auth.logout(try process.auth.authenticate(accessToken: bob.accessToken), origin: RequestOrigin())
                try await process.auth.revokeUsers([ann.user.id], actorId: bob.user.id, reason: "lost phone — perdu, 失くした ✓", origin: .commandLine)
                _ = try await process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
                _ = try await process.auth.unrevoke(.global, actorId: nil, reason: nil, origin: .commandLine)
                _ = try await process.store.revokeSigningKey(
                    kid: "hs_leaked-key", at: Date(), actorId: nil, reason: "leaked", replacement: nil, audit: AuditRecord(at: Date(), event: .keyRevoked)
                )
                // The follower's read (SQLiteNIO's values, or PostgreSQL's packed records), in pages of two so that
                // paging (and on PostgreSQL decoding one page while the next is read) is exercised.
                let collected = Mutex<[RevocationEntry]>([])
                _ = try await process.store.readRevocationLog(after: nil, pageSize: 2) { page in collected.withLock { $0 += page } }
                let fast = collected.withLock { $0 }.sorted { $0.seq < $1.seq }
                let generic = try await process.store.database.read { db in
                    try await SQLAuthStore.revocationsThroughSQLKit(after: 0, limit: 100, on: db)
                }
                #expect(fast == generic)
                #expect(fast.count >= 4)
                let kinds = Set(fast.map { entry in
                    switch entry.kind {
                    case .token: "token"
                    case .session: "session"
                    case .subject: "subject"
                    case .global: "global"
                    case .key: "key"
                    }
                })
                #expect(kinds == ["token", "session", "subject", "global", "key"])
                #expect(fast.contains { $0.kind == .key(kid: "hs_leaked-key") && $0.reason == "leaked" })
                #expect(fast.contains { $0.actorId == bob.user.id && $0.reason == "lost phone — perdu, 失くした ✓" })
                #expect(try await process.store.revocations(after: fast[1].seq, limit: 1) == [fast[2]])
            }
        }
    }

    @Test(arguments: TestBackend.all) func anotherProcessSeesAnUnrevokeThroughTheLog(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { server in
                let pair = try await server.signUpAndIn()
                try await server.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
                #expect(await !server.accepts(pair))
                try await database.withProcess { cli in
                    try await cli.auth.unrevoke(.global, actorId: nil, reason: nil, origin: .commandLine)
                }
                try await server.follower.catchUp()
                #expect(await server.accepts(pair))
            }
        }
    }

    /// Housekeeping deletes token and session revocation rows once no token they cover can be valid, and sessions
    /// (with their spent refresh tokens) a week after they expired; subject and global rows, which are state, stay.
    @Test(arguments: TestBackend.all) func housekeepingDeletesOnlyWhatCanNoLongerMatter(_ backend: TestBackend) async throws {
        func isTokenOrSession(_ entry: RevocationEntry) -> Bool {
            switch entry.kind {
            case .token, .session: true
            case .subject, .global, .key: false
            }
        }
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn()
                let refreshed = try await process.auth.refresh(refreshToken: ann.refreshToken, origin: RequestOrigin())
                try await process.auth.logout(try process.auth.authenticate(accessToken: refreshed.accessToken), origin: RequestOrigin())
                let bob = try await process.signUpAndIn("bob@example.org")
                _ = try await process.auth.revokeUsers([bob.user.id], actorId: nil, reason: nil, origin: .commandLine)
                _ = try await process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
                let before = try await process.store.revocations(after: 0, limit: 100)
                #expect(before.contains(where: isTokenOrSession))
                let housekeeping = Housekeeping(store: process.store, auditRetentionDays: nil, logger: TestDatabase.logger)

                // Now: every access token covered may still be valid, every session is live or recent.
                #expect(try await housekeeping.pruneOnce(now: Date())?.expired == ExpiredRowsDeleted())
                #expect(try await process.store.revocations(after: 0, limit: 100) == before)

                // Two hours on: the access tokens (15 minutes) are gone, so are their rows; sessions (30 days) stay.
                let later = try #require(await housekeeping.pruneOnce(now: Date().addingTimeInterval(2 * 3600)))
                #expect(later.expired == ExpiredRowsDeleted(revocations: before.filter(isTokenOrSession).count))
                let kept = try await process.store.revocations(after: 0, limit: 100)
                #expect(kept == before.filter { !isTokenOrSession($0) })
                #expect(kept.count == 2)

                // Forty days on: both sessions expired more than a week ago; Ann's spent refresh token goes with hers.
                let much = try #require(await housekeeping.pruneOnce(now: Date().addingTimeInterval(40 * 86_400)))
                #expect(much.expired == ExpiredRowsDeleted(sessions: 2, spentRefreshTokens: 1))
                #expect(try await process.store.revocations(after: 0, limit: 100) == kept)
                #expect(try await housekeeping.pruneOnce(now: Date().addingTimeInterval(40 * 86_400))?.expired == ExpiredRowsDeleted())

                // Accounts and the audit trail are untouched; signing in again works and the spent token is unknown.
                _ = try await process.auth.login(email: "ann@example.org", password: "correct horse", origin: RequestOrigin())
                await #expect(throws: AuthError.invalidRefreshToken) {
                    _ = try await process.auth.refresh(refreshToken: ann.refreshToken, origin: RequestOrigin())
                }
                #expect(try await process.store.auditEvents(AuditQuery()).isEmpty == false)
            }
        }
    }

    /// More expired rows than one batch: all of them go, over several short transactions, and nothing else does.
    @Test(arguments: TestBackend.all) func housekeepingDeletesInBatches(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let expired = 2 * SQLAuthStore.deletionBatch + 17
                let past = Date().addingTimeInterval(-2 * 3600)
                // Two thousand round trips in one transaction: longer than a request's bound on PostgreSQL.
                try await DatabaseWork.$isLong.withValue(true) {
                try await process.store.database.transaction { db in
                    for index in 0..<expired {
                        let kind: RevocationKind = index % 2 == 0 ? .token(jti: UUID(), until: past) : .session(id: UUID(), until: past)
                        _ = try await SQLAuthStore.appendEntry(kind, cause: .signOut, at: past, actorId: nil, reason: nil, on: db)
                    }
                    _ = try await SQLAuthStore.appendEntry(.token(jti: UUID(), until: Date().addingTimeInterval(600)), cause: .signOut, at: past, actorId: nil, reason: nil, on: db)
                }
                }
                let housekeeping = Housekeeping(store: process.store, auditRetentionDays: nil, logger: TestDatabase.logger)
                #expect(try await housekeeping.pruneOnce()?.expired == ExpiredRowsDeleted(revocations: expired))
                #expect(try await process.store.revocations(after: 0, limit: 10_000).count == 1)
            }
        }
    }

    @Test(arguments: TestBackend.all) func auditRetentionDeletesOnlyRowsPastThePeriod(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let now = Date()
                try await process.store.recordAudit(AuditRecord(at: now.addingTimeInterval(-40 * 86_400), event: .authLogin))
                try await process.store.recordAudit(AuditRecord(at: now.addingTimeInterval(-10 * 86_400), event: .authLogin))
                let housekeeping = Housekeeping(store: process.store, auditRetentionDays: 30, logger: TestDatabase.logger)
                #expect(try await housekeeping.pruneOnce(now: now)?.auditEvents == 1)
                #expect(try await process.store.auditEvents(AuditQuery(event: .authLogin)).count == 1)
            }
        }
    }
}
