import Foundation
import Testing
import TesseraCore

@testable import TesseraStore

/// Signing keys in the database, on both backends: every instance signs with the same current key, a rotation signs
/// no one out, a revoked key's tokens are refused everywhere, and key-encryption keys rotate too.
@Suite struct KeyLifecycleTests {
    static let kekA = String(repeating: "a", count: 32) + "-key-encryption-key-A"
    static let kekB = String(repeating: "b", count: 32) + "-key-encryption-key-B"

    static func source(_ algorithm: SigningAlgorithm = .edDSA, _ keks: [String] = [kekA]) throws -> KeyManager.Source {
        .database(algorithm, try KeyEncryption(secrets: keks))
    }

    @Test(arguments: TestBackend.all) func twoInstancesSignWithTheSameFirstKeyAndAcceptEachOthersTokens(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(keys: try Self.source(.es256)) { first in
                try await database.withProcess(keys: try Self.source(.es256)) { second in
                    #expect(first.keys.ring.snapshot.current.kid == second.keys.ring.snapshot.current.kid)
                    let pair = try await first.signUpAndIn()
                    #expect(await second.accepts(pair))
                    let listed = try await second.keys.list()
                    #expect(listed.map(\.state) == [.current])
                    #expect(first.keys.publishedKeys.map { $0["kid"] } == [listed[0].key.kid])
                    // The private half is stored sealed, never as it is.
                    let stored = try await first.store.signingKeys(algorithm: .es256)
                    #expect(stored.count == 1 && stored[0].sealedPrivateKey != nil && stored[0].sealedWith?.hasPrefix("kek_") == true)
                }
            }
        }
    }

    @Test(arguments: TestBackend.all) func aRotationPublishesFirstThenSignsAndOldTokensKeepWorking(_ backend: TestBackend) async throws {
        let clock = ManualWallClock(Date())
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(clock: clock, keys: try Self.source()) { process in
                let before = try await process.signUpAndIn()
                let old = process.keys.ring.snapshot.current.kid
                let published = try await process.keys.rotate(actorId: nil)
                #expect(published.state == .published)
                // Published: in the JWKS at once, but not signing yet.
                #expect(Set(process.keys.publishedKeys.compactMap { $0["kid"] }) == [old, published.key.kid])
                #expect(process.keys.ring.snapshot.current.kid == old)
                await #expect(throws: KeyChangeError.self) { try await process.keys.rotate(actorId: nil) }

                clock.advance(by: .seconds(601))
                try await process.keys.maintain()
                #expect(process.keys.ring.snapshot.current.kid == published.key.kid)
                #expect(await process.accepts(before))
                let after = try await process.signUpAndIn()
                #expect(try process.auth.authenticate(accessToken: after.accessToken).keyId == published.key.kid)
                #expect(try await process.keys.list().map(\.state) == [.retired, .current])

                // Once every token the old key signed has expired, it leaves the JWKS and its private half is destroyed.
                clock.advance(by: .seconds(900 + 30 + 1))
                try await process.keys.maintain()
                #expect(try await process.keys.list().map(\.state) == [.expired, .current])
                #expect(process.keys.publishedKeys.compactMap { $0["kid"] } == [published.key.kid])
                let stored = try await process.store.signingKeys(algorithm: .edDSA)
                #expect(stored.first { $0.kid == old }?.sealedPrivateKey == nil)
            }
        }
    }

    /// `TESSERA_KEY_ROTATION`: a new key is published a publication period before the current one has served its
    /// turn, and takes over on time, with no one telling any instance.
    @Test func aScheduleRotatesByItself() async throws {
        let clock = ManualWallClock(Date())
        try await TestDatabase.with { database in
            try await database.withProcess(clock: clock, keys: try Self.source()) { process in
                let keys = try await KeyManager(
                    store: process.store, index: process.auth.index,
                    schedule: KeySchedule(publication: .seconds(600), tokenLifetime: .seconds(930), rotation: .seconds(86_400)),
                    source: try Self.source(), clock: clock, logger: TestDatabase.logger
                )
                let first = keys.ring.snapshot.current.kid
                try await keys.maintain()
                #expect(try await keys.list().map(\.state) == [.current])
                clock.advance(by: .seconds(86_400 - 600))
                try await keys.maintain()
                #expect(try await keys.list().map(\.state) == [.current, .published])
                clock.advance(by: .seconds(601))
                try await keys.maintain()
                #expect(keys.ring.snapshot.current.kid != first)
                #expect(try await keys.list().map(\.state) == [.retired, .current])
                let audit = try await process.store.auditEvents(AuditQuery(event: .keyCreated, limit: 10))
                #expect(audit.first?.details["reason"] == "scheduled")
            }
        }
    }

    /// Retiring the current key hands over to the waiting one, but never before that one has been published for the
    /// whole period (a verifier caching the JWKS must hold it first); the ring switches on time by itself.
    @Test(arguments: TestBackend.all) func retiringTheOnlySigningKeyIsRefusedAndAWaitingKeyTakesOverOnceFullyPublished(_ backend: TestBackend) async throws {
        let clock = ManualWallClock(Date())
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(clock: clock, keys: try Self.source()) { process in
                let current = process.keys.ring.snapshot.current.kid
                await #expect(throws: KeyChangeError.noSuccessor(kid: current)) { try await process.keys.retire(kid: current, actorId: nil) }
                let waiting = try await process.keys.rotate(actorId: nil)
                clock.advance(by: .seconds(100))
                let handover = try await process.keys.retire(kid: current, actorId: nil)
                #expect(handover == waiting.key.createdAt.addingTimeInterval(600))
                #expect(try await process.keys.list().map(\.state) == [.current, .published])
                #expect(process.keys.ring.snapshot.signingKey(at: clock.now()).kid == current)
                clock.advance(by: .seconds(501))
                // Without reading the keys again: the ring knows which key comes next and when.
                #expect(process.keys.ring.snapshot.signingKey(at: clock.now()).kid == waiting.key.kid)
                let pair = try await process.signUpAndIn()
                #expect(try process.auth.authenticate(accessToken: pair.accessToken).keyId == waiting.key.kid)
                #expect(try await process.keys.list().map(\.state) == [.retired, .current])
                await #expect(throws: KeyChangeError.unknownKey("nope")) { try await process.keys.retire(kid: "nope", actorId: nil) }
                let audit = try await process.store.auditEvents(AuditQuery(event: .keyRetired, limit: 10))
                #expect(audit.first?.details["kid"] == current && audit.first?.details["successor"] == waiting.key.kid)
            }
        }
    }

    /// Removing the key a retiring current key hands over to (withdrawing or revoking it before its time) takes the
    /// retirement back: a key always signs.
    @Test(arguments: ["withdraw", "revoke"]) func removingTheSuccessorKeepsTheCurrentKeySigning(_ how: String) async throws {
        let clock = ManualWallClock(Date())
        try await TestDatabase.with { database in
            try await database.withProcess(clock: clock, keys: try Self.source()) { process in
                let current = process.keys.ring.snapshot.current.kid
                let successor = try await process.keys.rotate(actorId: nil).key.kid
                try await process.keys.retire(kid: current, actorId: nil)
                if how == "withdraw" {
                    try await process.keys.retire(kid: successor, actorId: nil)
                } else {
                    try await process.keys.revoke(kid: successor, actorId: nil, reason: "drill")
                }
                clock.advance(by: .seconds(3600))
                try await process.keys.maintain()
                #expect(process.keys.ring.snapshot.current.kid == current)
                #expect(try await process.keys.list().filter { $0.state == .current }.map(\.key.kid) == [current])
                _ = try await process.signUpAndIn()
            }
        }
    }

    /// A refresh that cannot be signed (no key this instance can open) answers 503 before it commits: the refresh
    /// token is not spent, and works on an instance that can sign.
    @Test func aRefreshThatCannotBeSignedDoesNotSpendTheRefreshToken() async throws {
        try await TestDatabase.with { database in
            let pair = try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekB])) { try await $0.signUpAndIn() }
            try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekA])) { blind in
                await #expect(throws: StoreUnavailable.self) { _ = try await blind.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin()) }
            }
            try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekB])) { process in
                _ = try await process.auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin())
            }
        }
    }

    /// The emergency: a leaked key is revoked on one instance; its tokens are refused there at once and on the other
    /// as soon as it reads the log; both sign with the replacement from then on.
    @Test(arguments: TestBackend.all) func aRevokedKeysTokensAreRefusedOnEveryInstance(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            try await database.withProcess(keys: try Self.source()) { first in
                try await database.withProcess(keys: try Self.source()) { second in
                    let pair = try await first.signUpAndIn()
                    #expect(await second.accepts(pair))
                    let leaked = first.keys.ring.snapshot.current.kid
                    try await first.keys.revoke(kid: leaked, actorId: nil, reason: "leaked")
                    #expect(await !first.accepts(pair))
                    try await second.follower.catchUp()
                    #expect(await !second.accepts(pair))
                    // The second instance's ring still names the revoked key: its next signing reads the keys again.
                    let fresh = try await second.signUpAndIn("bob@example.org")
                    #expect(try second.auth.authenticate(accessToken: fresh.accessToken).keyId != leaked)
                    #expect(await first.accepts(fresh))
                    #expect(!first.keys.publishedKeys.contains { $0["kid"] == leaked })
                    let audit = try await first.store.auditEvents(AuditQuery(event: .keyRevoked, limit: 10))
                    #expect(audit.first?.details["kid"] == leaked && audit.first?.details["reason"] == "leaked")
                    await #expect(throws: KeyChangeError.self) { try await first.keys.revoke(kid: leaked, actorId: nil, reason: nil) }
                }
            }
        }
    }

    /// Key-encryption keys rotate: an instance given a new one first (and the old one after it) opens the keys and
    /// seals them again under the new one, after which the old one can go; an instance with neither refuses to start.
    @Test(arguments: TestBackend.all) func keyEncryptionKeysRotate(_ backend: TestBackend) async throws {
        try await TestDatabase.with(backend) { database in
            let kid = try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekA])) { $0.keys.ring.snapshot.current.kid }
            try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekB, Self.kekA])) { process in
                #expect(process.keys.ring.snapshot.current.kid == kid)
                let stored = try await process.store.signingKeys(algorithm: .edDSA)
                #expect(stored.first?.sealedWith == (try KeyEncryption(secrets: [Self.kekB])).currentId)
            }
            try await database.withProcess(keys: try Self.source(.edDSA, [Self.kekB])) { process in
                #expect(process.keys.ring.snapshot.current.kid == kid)
                _ = try await process.signUpAndIn()
            }
            // An instance with neither key-encryption key still verifies tokens but cannot sign: sign-in is 503, not a
            // token signed with something else; a rotation and retirement (sealed under its own key) mends it.
            let clock = ManualWallClock(Date())
            try await database.withProcess(clock: clock, keys: try Self.source(.edDSA, [Self.kekA])) { process in
                #expect(!process.keys.ring.snapshot.current.canSign)
                await #expect(throws: StoreUnavailable.self) { _ = try await process.signUpAndIn("cy@example.org") }
                _ = try await process.keys.rotate(actorId: nil)
                try await process.keys.retire(kid: kid, actorId: nil)
                clock.advance(by: .seconds(601))
                try await process.keys.maintain()
                #expect(process.keys.ring.snapshot.current.canSign)
                _ = try await process.signUpAndIn("cy@example.org")
            }
        }
    }

    @Test func aSealedKeyOpensOnlyUnderItsOwnKidAndKey() throws {
        let encryption = try KeyEncryption(secrets: [Self.kekA])
        let sealed = try encryption.seal(Array(repeating: 7, count: 32), kid: "one")
        #expect(encryption.open(sealed.sealed, sealedWith: sealed.with, kid: "one") == Array(repeating: 7, count: 32))
        #expect(encryption.open(sealed.sealed, sealedWith: sealed.with, kid: "two") == nil)
        #expect(try KeyEncryption(secrets: [Self.kekB]).open(sealed.sealed, sealedWith: sealed.with, kid: "one") == nil)
        var bytes = Array(Base64URL.decode(Substring(sealed.sealed))!)
        bytes[bytes.count / 2] ^= 1
        #expect(encryption.open(Base64URL.encode(bytes), sealedWith: sealed.with, kid: "one") == nil)
        #expect(throws: KeyEncryptionError.self) { try KeyEncryption(secrets: ["short"]) }
    }

    /// The schedule alone says which key signs: every instance works out the same answer from the same rows.
    @Test func theScheduleFollowsTheKeysTimes() {
        let schedule = KeySchedule(publication: .seconds(600), tokenLifetime: .seconds(930))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        func key(_ kid: String, _ activeFrom: TimeInterval, retired: TimeInterval? = nil, revoked: TimeInterval? = nil) -> StoredSigningKey {
            StoredSigningKey(
                kid: kid, algorithm: .edDSA, publicKey: [], sealedPrivateKey: "x", sealedWith: "k", createdAt: t0, activeFrom: t0.addingTimeInterval(activeFrom),
                retiredAt: retired.map { t0.addingTimeInterval($0) }, revokedAt: revoked.map { t0.addingTimeInterval($0) }
            )
        }
        let keys = [key("a", 0), key("b", 1000), key("c", 5000, retired: 4000), key("d", 800, revoked: 900)]
        func states(at offset: TimeInterval) -> [String: KeyState] {
            Dictionary(uniqueKeysWithValues: schedule.statuses(of: keys, now: t0.addingTimeInterval(offset)).map { ($0.key.kid, $0.state) })
        }
        #expect(states(at: 500) == ["a": .current, "b": .published, "c": .expired, "d": .revoked])
        #expect(states(at: 1500) == ["a": .retired, "b": .current, "c": .expired, "d": .revoked])
        #expect(states(at: 1000 + 930) == ["a": .expired, "b": .current, "c": .expired, "d": .revoked])
    }
}
