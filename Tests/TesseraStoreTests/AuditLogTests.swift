import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

@Suite struct AuditLogTests {
    /// What it stops: a revoke that hides from the trail of the people it cut. An operator reading Bob's trail
    /// must see the revoke that took his tokens even when it took Ann's in the same breath.
    @Test(arguments: TestBackend.all) func aRevokeOfSeveralUsersIsFoundByEachOfThem(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn("ann@example.org").user.id
                let bob = try await process.signUpAndIn("bob@example.org").user.id
                let carol = try await process.signUpAndIn("carol@example.org").user.id
                try await process.auth.revokeUsers([bob, ann], actorId: carol, reason: "lost laptops", origin: .commandLine)
                try await process.auth.revokeUsers([bob], actorId: nil, reason: "again", origin: .commandLine)

                let both = [ann, bob].sorted { $0.uuidString < $1.uuidString }
                for person in [ann, bob] {
                    let revokes = try await process.store.auditEvents(AuditQuery(userId: person, event: .revokeUsers))
                    #expect(revokes.map { $0.details["reason"] } == (person == bob ? ["again", "lost laptops"] : ["lost laptops"]))
                    let shared = try #require(revokes.last)
                    #expect(shared.subjectId == nil)
                    #expect(shared.subjectIds == both)
                    #expect(shared.actorId == carol)
                }
                // The single-user revoke names its subject in `subjectId` and lists nothing else.
                let single = try #require(try await process.store.auditEvents(AuditQuery(event: .revokeUsers)).first)
                #expect(single.subjectId == bob)
                #expect(single.subjectIds.isEmpty)
                // Carol is found by being the actor, and only her own rows come back besides.
                let carols = try await process.store.auditEvents(AuditQuery(userId: carol, event: .revokeUsers))
                #expect(carols.map { $0.details["reason"] } == ["lost laptops"])
            }
        }
    }

    @Test(arguments: TestBackend.all) func pagingThroughOnePersonsTrailVisitsEachRowOnce(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn("ann@example.org").user.id
                let bob = try await process.signUpAndIn("bob@example.org").user.id
                let carol = try await process.signUpAndIn("carol@example.org").user.id
                for round in 0..<3 {
                    try await process.auth.revokeUsers([ann, bob, carol], actorId: nil, reason: "round \(round)", origin: .commandLine)
                    try await process.auth.revokeUsers([ann, carol], actorId: nil, reason: "others \(round)", origin: .commandLine)
                }
                let whole = try await process.auth.auditLog(AuditQuery(userId: bob, limit: 500), cursor: nil)
                #expect(whole.nextCursor == nil)
                #expect(whole.events.filter { $0.event == .revokeUsers }.count == 3)
                var visited: [Int64] = []
                var cursor: String?
                repeat {
                    let page = try await process.auth.auditLog(AuditQuery(userId: bob, limit: 1), cursor: cursor)
                    visited += page.events.compactMap(\.id)
                    cursor = page.nextCursor
                } while cursor != nil
                #expect(visited == whole.events.compactMap(\.id))
                #expect(Set(visited).count == visited.count)
            }
        }
    }

    @Test(arguments: TestBackend.all) func pruningAnAuditRowDropsItsSubjectList(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let ann = try await process.signUpAndIn("ann@example.org").user.id
                let bob = try await process.signUpAndIn("bob@example.org").user.id
                try await process.auth.revokeUsers([ann, bob], actorId: nil, reason: nil, origin: .commandLine)
                func listed() async throws -> Int {
                    try await process.store.database.read { db in
                        try await db.raw("SELECT COUNT(*) AS n FROM audit_subjects").first()?.decode(column: "n", as: Int.self) ?? -1
                    }
                }
                #expect(try await listed() == 2)
                _ = try await process.store.deleteAuditEvents(before: Date().addingTimeInterval(60))
                #expect(try await listed() == 0)
                #expect(try await process.store.auditEvents(AuditQuery(userId: bob)).isEmpty)
            }
        }
    }
}
