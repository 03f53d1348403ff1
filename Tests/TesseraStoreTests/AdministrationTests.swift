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
