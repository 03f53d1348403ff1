import Foundation
import Testing
import TesseraCore

@testable import TesseraStore

@Suite struct AdministrationTests {
    @Test func unrevokeAppendsARowAndNeverEditsHistory() async throws {
        try await TestDatabase.with { database in
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

    /// The log has a fast reader for SQLite and one through SQLKit for other databases; both map rows through one
    /// function and must read the same entries, of every kind.
    @Test func bothLogReadersReadTheSameEntries() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn()
                let bob = try await process.signUpAndIn("bob@example.org")
                try await process.auth.logout(try process.auth.authenticate(accessToken: bob.accessToken), origin: RequestOrigin())
                try await process.auth.revokeUsers([ann.user.id], actorId: bob.user.id, reason: "lost phone", origin: .commandLine)
                _ = try await process.auth.revokeAll(actorId: nil, reason: nil, origin: .commandLine)
                _ = try await process.auth.unrevoke(.global, actorId: nil, reason: nil, origin: .commandLine)
                let fast = try await process.store.revocations(after: 0, limit: 100)
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
                    }
                })
                #expect(kinds.isSuperset(of: ["session", "subject", "global"]))
                #expect(fast.contains { $0.actorId == bob.user.id && $0.reason == "lost phone" })
                #expect(try await process.store.revocations(after: fast[1].seq, limit: 1) == [fast[2]])
            }
        }
    }

    @Test func anotherProcessSeesAnUnrevokeThroughTheLog() async throws {
        try await TestDatabase.with { database in
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

    @Test func auditRetentionDeletesOnlyRowsPastThePeriod() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in
                let now = Date()
                try await process.store.recordAudit(AuditRecord(at: now.addingTimeInterval(-40 * 86_400), event: .authLogin))
                try await process.store.recordAudit(AuditRecord(at: now.addingTimeInterval(-10 * 86_400), event: .authLogin))
                let retention = AuditRetention(store: process.store, retentionDays: 30, logger: TestDatabase.logger)
                #expect(try await retention.pruneOnce(now: now) == 1)
                #expect(try await process.store.auditEvents(AuditQuery(event: .authLogin)).count == 1)
            }
        }
    }
}
