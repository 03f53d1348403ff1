import Foundation
import Testing
import TesseraCore

@testable import TesseraStore

/// RFC 7009 revocation and RFC 7662 introspection as the service answers them, on both backends.
@Suite struct OAuthServiceTests {
    @Test(arguments: TestBackend.all) func introspectionSaysActiveOnlyWhatTheIndexAccepts(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                let active = try #require(try await process.auth.introspect(token: pair.accessToken))
                #expect(active.kind == .accessToken && active.userId == pair.user.id && active.sessionId == pair.sessionId)
                #expect(active.username == "ann@example.org" && active.role == .user && active.jti != nil)
                let refresh = try #require(try await process.auth.introspect(token: pair.refreshToken))
                #expect(refresh.kind == .refreshToken && refresh.sessionId == pair.sessionId)
                for junk in ["", "x", "a.b.c", pair.accessToken + "x", String(pair.accessToken.dropLast(2)), OpaqueToken.generate()] {
                    #expect(try await process.auth.introspect(token: junk) == nil, "\(junk)")
                }
                try await process.auth.logout(try process.auth.authenticate(accessToken: pair.accessToken), origin: RequestOrigin())
                #expect(try await process.auth.introspect(token: pair.accessToken) == nil)
                #expect(try await process.auth.introspect(token: pair.refreshToken) == nil)
            }
        }
    }

    /// A stale index never answers "active" on a guess.
    @Test func aStaleIndexRefusesToAnswer() async throws {
        try await TestDatabase.with { database in
            try await database.withProcess { process in
                let pair = try await process.signUpAndIn()
                let stale = try await AuthService(
                    store: process.store, index: RevocationIndex(stalenessBound: .seconds(5)), hasher: BcryptPasswordHasher(cost: 4), keys: process.auth.keys,
                    settings: TokenSettings()
                )
                await #expect(throws: AuthError.revocationIndexStale) { try await stale.introspect(token: pair.accessToken) }
                await #expect(throws: AuthError.revocationIndexStale) { try await stale.introspect(token: pair.refreshToken) }
            }
        }
    }

    /// RFC 7009: an access token is revoked by its jti alone (the session goes on), on every process that reads the
    /// log; a refresh token ends its session; an unknown, spent or foreign token is left alone without an error.
    @Test(arguments: TestBackend.all) func revocationCutsOneTokenOrOneSession(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess { first in
                try await database.withProcess { second in
                    let pair = try await first.signUpAndIn()
                    let other = try await first.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin())
                    try await first.auth.revoke(token: pair.accessToken, clientId: nil, origin: RequestOrigin())
                    #expect(await !first.accepts(pair))
                    #expect(await first.accepts(other))
                    try await second.follower.catchUp()
                    #expect(await !second.accepts(pair))
                    #expect(await second.accepts(other))
                    let log = try await first.store.revocations(after: 0, limit: 10)
                    #expect(log.count == 1)
                    guard case .token(let jti, _) = log.first?.kind else { Issue.record("not a token row: \(log)"); return }
                    #expect(jti != (try first.auth.authenticate(accessToken: other.accessToken)).jti)
                    let audit = try await first.store.auditEvents(AuditQuery(event: .tokenRevoked, limit: 5))
                    #expect(audit.first?.subjectId == pair.user.id && audit.first?.actorId == pair.user.id)

                    try await first.auth.revoke(token: other.refreshToken, clientId: "tc_billing", origin: RequestOrigin())
                    #expect(await !first.accepts(other))
                    let logout = try await first.store.auditEvents(AuditQuery(event: .authLogout, limit: 5))
                    #expect(logout.first?.details["client"] == "tc_billing" && logout.first?.actorId == nil)

                    let before = try await first.store.revocations(after: 0, limit: 10).count
                    for nothing in ["junk", pair.refreshToken, other.refreshToken, pair.accessToken, OpaqueToken.generate()] {
                        try await first.auth.revoke(token: nothing, clientId: nil, origin: RequestOrigin())
                    }
                    #expect(try await first.store.revocations(after: 0, limit: 10).count == before)
                }
            }
        }
    }
}
