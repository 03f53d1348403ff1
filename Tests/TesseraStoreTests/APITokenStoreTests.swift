import Foundation
import SQLKit
import Testing
import TesseraCore

@testable import TesseraStore

/// API tokens and the reads behind `explain`, on both databases: what one process writes another enforces.
@Suite struct APITokenStoreTests {
    @Test(arguments: TestBackend.all) func aTokenMadeInOneProcessIsRefusedByAnotherOnceRevoked(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let (token, id, userId) = try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                let made = try await process.auth.createAPIToken(userId: pair.user.id, name: "ci", days: 3, actorId: nil, origin: .commandLine)
                // Only the hash is stored.
                let stored = try #require(try await process.store.apiToken(id: made.record.id))
                #expect(stored.name == "ci")
                #expect(try await process.store.apiToken(hash: APIToken.hash(made.token))?.id == made.record.id)
                return (made.token, made.record.id, pair.user.id)
            }
            try await database.withProcess { other in
                _ = try await other.follower.catchUp()
                #expect(try await other.auth.authenticate(apiToken: token).userId == userId)
                try await other.auth.flushAPITokenUse()
                #expect(try await other.store.apiToken(id: id)?.lastUsedAt != nil)
            }
            try await database.withProcess { process in
                try await process.auth.revokeAPIToken(id: id, owner: userId, actorId: userId, origin: .commandLine)
                await #expect(throws: AuthError.apiTokenNotFound) {
                    try await process.auth.revokeAPIToken(id: id, owner: userId, actorId: userId, origin: .commandLine)
                }
            }
            try await database.withProcess { other in
                _ = try await other.follower.catchUp()
                await #expect(throws: AuthError.tokenRevoked) { try await other.auth.authenticate(apiToken: token) }
                #expect(try await other.store.apiToken(id: id)?.invalidatedAt != nil)
                let history = try await other.store.revocationHistory(of: .token(jti: id))
                #expect(history.count == 1)
                #expect(history.first?.cause == .tokenRevoked)
            }
        }
    }

    /// What it stops: an API token living longer than the index keeps its user's cut-off (which it lets go of after
    /// the refresh lifetime) being accepted again once the cut-off is gone. The database's word is read with it.
    @Test(arguments: TestBackend.all) func aTokenOfACutUserIsRefusedEvenByAnIndexThatNeverHeardOfTheCut(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let token = try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                let made = try await process.auth.createAPIToken(userId: pair.user.id, name: "ci", days: 30, actorId: nil, origin: .commandLine)
                _ = try await process.auth.revokeUsers([pair.user.id], actorId: nil, reason: "left", origin: .commandLine)
                #expect(try await process.store.apiToken(id: made.record.id)?.cutByAccount == true)
                return made.token
            }
            try await database.withProcess { fresh in
                // This process never read the log: its index holds no cut-off for the user.
                await #expect(throws: AuthError.tokenRevoked) { try await fresh.auth.authenticate(apiToken: token) }
            }
        }
    }

    @Test(arguments: TestBackend.all) func explainReadsRefreshTokensCurrentAndSpentAndTheCutsOfAUser(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                let current = try #require(try await process.store.refreshTokenRecord(hash: OpaqueToken.hash(pair.refreshToken)))
                #expect(current.sessionId == pair.sessionId && current.spentAt == nil)
                let next = try await process.auth.refresh(refreshToken: pair.refreshToken, origin: .commandLine)
                let spent = try #require(try await process.store.refreshTokenRecord(hash: OpaqueToken.hash(pair.refreshToken)))
                #expect(spent.spentAt != nil && spent.sessionId == pair.sessionId)
                #expect(try await process.store.refreshTokenRecord(hash: OpaqueToken.hash(next.refreshToken))?.spentAt == nil)
                #expect(try await process.store.refreshTokenRecord(hash: OpaqueToken.hash(OpaqueToken.generate())) == nil)

                try await process.auth.revokeUsers([pair.user.id], actorId: nil, reason: "first", origin: .commandLine)
                try await process.auth.revokeUsers([pair.user.id], actorId: nil, reason: "second", origin: .commandLine)
                let history = try await process.store.revocationHistory(of: .subject(userId: pair.user.id))
                #expect(history.map(\.entry.reason) == ["first", "second"])
                #expect(history.allSatisfy { $0.cause == .adminRevoke })
                // The cut that first refused the token is the first of the two.
                let explained = try await process.auth.explain(token: next.accessToken)
                #expect(explained.reason == "revoked")
                #expect(explained.cuts.first?.kind == "subject")
                #expect(explained.cuts.first?.reason == "first")
            }
        }
    }
}
