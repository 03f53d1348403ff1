import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

@Suite struct RevocationIndexTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let user = UUID()

    func token(version: Int64 = 0, epoch: Int64 = 0, session: UUID = UUID(), jti: UUID = UUID()) -> VerifiedAccessToken {
        VerifiedAccessToken(
            userId: self.user, sessionId: session, jti: jti, role: .user, version: version, epoch: epoch, issuedAt: self.now,
            expiresAt: self.now.addingTimeInterval(900)
        )
    }

    func entry(_ seq: Int64, _ kind: RevocationKind) -> RevocationEntry {
        RevocationEntry(seq: seq, kind: kind, revokedAt: self.now, actorId: nil, reason: nil)
    }

    @Test func aTokenNobodyRevokedIsAccepted() {
        let index = RevocationIndex()
        #expect(!index.isRevoked(self.token()))
    }

    @Test func signInRightAfterRevokeAllIsAccepted() {
        // Revoke-all and a new sign-in in the same wall-clock second: the cut is by epoch, not by `iat`,
        // so the token from before is refused and the one from after is accepted.
        let index = RevocationIndex()
        let before = self.token(epoch: 0)
        index.apply([self.entry(1, .global(epoch: 1))], now: self.now)
        let after = self.token(epoch: 1)
        #expect(before.issuedAt == after.issuedAt)
        #expect(index.isRevoked(before))
        #expect(!index.isRevoked(after))
    }

    @Test func signOutEverywhereCutsOnlyOlderVersionsOfThatUser() {
        let index = RevocationIndex()
        index.apply([self.entry(1, .subject(userId: self.user, acceptedFromVersion: 3))], now: self.now)
        #expect(index.isRevoked(self.token(version: 2)))
        #expect(!index.isRevoked(self.token(version: 3)))
        let someoneElse = VerifiedAccessToken(
            userId: UUID(), sessionId: UUID(), jti: UUID(), role: .user, version: 0, epoch: 0, issuedAt: self.now, expiresAt: self.now
        )
        #expect(!index.isRevoked(someoneElse))
    }

    @Test func aRevokedSessionTakesEveryTokenOfItButNoOther() {
        let index = RevocationIndex()
        let phone = UUID()
        index.apply([self.entry(1, .session(id: phone, until: self.now.addingTimeInterval(960)))], now: self.now)
        #expect(index.isRevoked(self.token(session: phone)))
        #expect(index.isRevoked(self.token(session: phone, jti: UUID())))
        #expect(!index.isRevoked(self.token(session: UUID())))
    }

    @Test func aRevokedJtiTakesThatTokenOnly() {
        let index = RevocationIndex()
        let jti = UUID()
        index.apply([self.entry(1, .token(jti: jti, until: self.now.addingTimeInterval(900)))], now: self.now)
        #expect(index.isRevoked(self.token(jti: jti)))
        #expect(!index.isRevoked(self.token()))
    }

    @Test func anOlderRowArrivingLateNeverLowersACutoff() {
        // The server applies its own write (seq 2) before the follower reads seq 1 written by the CLI.
        let index = RevocationIndex()
        index.apply([self.entry(2, .subject(userId: self.user, acceptedFromVersion: 2))], now: self.now)
        index.apply([self.entry(1, .subject(userId: self.user, acceptedFromVersion: 1))], now: self.now)
        #expect(index.isRevoked(self.token(version: 1)))
        index.apply([self.entry(4, .global(epoch: 2)), self.entry(3, .global(epoch: 1))], now: self.now)
        #expect(index.counts.globalEpoch == 2)
    }

    @Test func aLaterRowMayLowerACutoffAgainForUnrevoke() {
        let index = RevocationIndex()
        index.apply([self.entry(1, .global(epoch: 1))], now: self.now)
        index.apply([self.entry(2, .global(epoch: 0))], now: self.now)
        #expect(!index.isRevoked(self.token(epoch: 0)))
    }

    @Test func applyingTheSameRowsTwiceChangesNothing() {
        let index = RevocationIndex()
        let rows = [self.entry(1, .global(epoch: 1)), self.entry(2, .session(id: UUID(), until: self.now.addingTimeInterval(60)))]
        index.apply(rows, now: self.now)
        index.apply(rows, now: self.now)
        #expect(index.counts.sessions == 1)
        #expect(index.counts.globalEpoch == 1)
    }

    @Test func entriesArePrunedOnceTheirTokensCouldNoLongerBeValid() {
        let index = RevocationIndex()
        let session = UUID()
        index.apply(
            [
                self.entry(1, .session(id: session, until: self.now.addingTimeInterval(60))),
                self.entry(2, .token(jti: UUID(), until: self.now.addingTimeInterval(3600))),
            ],
            now: self.now
        )
        #expect(index.prune(now: self.now.addingTimeInterval(30)) == 0)
        #expect(index.prune(now: self.now.addingTimeInterval(120)) == 1)
        #expect(index.counts.tokens == 1)
        #expect(index.counts.sessions == 0)
    }

    /// Attack: a session revoked again (say a second sign-out after its tokens were refreshed) must not come back to
    /// life when its first `until` passes. Pruning drops exactly the entries whose second has passed, nothing else.
    @Test func pruningRemovesExactlyTheExpiredEntriesAndKeepsAnEntryRevokedAgainUntilLater() {
        let index = RevocationIndex()
        var expiring: [(jti: UUID, session: UUID, seconds: Int)] = []
        var rows: [RevocationEntry] = []
        for n in 0..<600 {
            let seconds = 1 + n % 300
            let row = (jti: UUID(), session: UUID(), seconds: seconds)
            expiring.append(row)
            rows.append(self.entry(Int64(2 * n + 1), .token(jti: row.jti, until: self.now.addingTimeInterval(Double(seconds)))))
            rows.append(self.entry(Int64(2 * n + 2), .session(id: row.session, until: self.now.addingTimeInterval(Double(seconds)))))
        }
        index.apply(rows, now: self.now)
        let revokedAgain = expiring[0].session
        let lateRowWithEarlierUntil = expiring[1].jti
        index.apply(
            [
                self.entry(2000, .session(id: revokedAgain, until: self.now.addingTimeInterval(900))),
                self.entry(2001, .token(jti: lateRowWithEarlierUntil, until: self.now.addingTimeInterval(900))),
                self.entry(1, .token(jti: lateRowWithEarlierUntil, until: self.now.addingTimeInterval(1))),
            ],
            now: self.now
        )

        let cut = 150
        let expired = expiring.filter { $0.seconds < cut }
        let removed = index.prune(now: self.now.addingTimeInterval(Double(cut)))
        #expect(removed == 2 * expired.count - 2, "all but the two kept until later")
        for row in expiring {
            let kept = row.seconds >= cut
            #expect(index.isRevoked(self.token(session: row.session)) == (kept || row.session == revokedAgain))
            #expect(index.isRevoked(self.token(jti: row.jti)) == (kept || row.jti == lateRowWithEarlierUntil))
        }
        #expect(index.prune(now: self.now.addingTimeInterval(Double(cut))) == 0, "nothing left to prune at the same time")
        #expect(index.prune(now: self.now.addingTimeInterval(901)) == 2 * (expiring.count - expired.count) + 2)
        #expect(index.counts.tokens == 0)
        #expect(index.counts.sessions == 0)
    }

    /// The follower prunes every minute while every request reads the index under the same lock: a prune of a
    /// burst of 200,000 expired revocations must hand the lock back every `pruneSliceSize` entries (the whole rebuild
    /// it replaces held it for tens of milliseconds at a million), and requests in between see every live entry.
    @Test func aPruneOfTwoHundredThousandExpiredEntriesExaminesAtMostASlicePerHoldOfTheLock() {
        let index = RevocationIndex(stalenessBound: .seconds(3600))
        let liveSession = UUID()
        var rows: [RevocationEntry] = []
        rows.reserveCapacity(200_001)
        for n in 0..<200_000 {
            let until = self.now.addingTimeInterval(Double(1 + n % 900))
            rows.append(self.entry(Int64(n + 1), n % 2 == 0 ? .token(jti: UUID(), until: until) : .session(id: UUID(), until: until)))
        }
        rows.append(self.entry(200_001, .session(id: liveSession, until: self.now.addingTimeInterval(3600))))
        index.apply(rows, now: self.now)
        index.markSynced()
        let live = self.token(session: liveSession)

        var slices: [Int] = []
        var remaining: [Int] = []
        let removed = index.prune(now: self.now.addingTimeInterval(1000), sliceSize: RevocationIndex.pruneSliceSize) { examined in
            slices.append(examined)
            // Called between two holds: the lock is free (a held `Mutex` would trap here) and the live cut stands.
            let counts = index.counts
            remaining.append(counts.tokens + counts.sessions)
            #expect(index.verdict(for: live) == .revoked)
        }
        #expect(removed == 200_000)
        #expect(slices.max() ?? 0 <= RevocationIndex.pruneSliceSize)
        #expect(slices.count >= 200_000 / RevocationIndex.pruneSliceSize)
        #expect(remaining == remaining.sorted(by: >), "each slice takes its share off")
        #expect(remaining.last == 1)
        #expect(index.prune(now: self.now.addingTimeInterval(1000)) == 0)
        #expect(index.verdict(for: live) == .revoked)
    }

    @Test func rowsAlreadyExpiredAreNotKept() {
        let index = RevocationIndex()
        index.apply([self.entry(1, .token(jti: UUID(), until: self.now.addingTimeInterval(-10)))], now: self.now)
        #expect(index.counts.tokens == 0)
    }

    @Test func theFollowerCursorOnlyMovesForward() {
        let index = RevocationIndex()
        index.applyFromLog([self.entry(5, .global(epoch: 1))], throughSeq: 5, now: self.now)
        index.applyFromLog([], throughSeq: 3, now: self.now)
        #expect(index.lastAppliedSeq == 5)
    }

    @Test func anIndexThatNeverSyncedOrFellBehindIsNotCurrent() {
        let index = RevocationIndex(stalenessBound: .seconds(5))
        #expect(!index.isCurrent())
        let start = ContinuousClock.now
        index.markSynced(at: start)
        #expect(index.isCurrent(at: start.advanced(by: .seconds(4))))
        #expect(!index.isCurrent(at: start.advanced(by: .seconds(6))))
    }

    /// The one look a protected request takes: stale wins over everything (fail closed), then any cut refuses.
    @Test func theVerdictFailsClosedWhenStaleAndOtherwiseMatchesIsRevoked() {
        let index = RevocationIndex(stalenessBound: .seconds(5))
        let revokedSession = UUID()
        index.apply([self.entry(1, .session(id: revokedSession, until: self.now.addingTimeInterval(900)))], now: self.now)
        let fine = self.token()
        let cut = self.token(session: revokedSession)
        #expect(index.verdict(for: fine) == .stale, "never synced")
        let start = ContinuousClock.now
        index.markSynced(at: start)
        #expect(index.verdict(for: fine, at: start) == .accepted)
        #expect(index.verdict(for: cut, at: start) == .revoked)
        #expect(index.verdict(for: cut, at: start.advanced(by: .seconds(6))) == .stale)
        #expect(index.verdict(for: fine, at: start.advanced(by: .seconds(6))) == .stale)
    }

    @Test func sessionRefreshIsRefusedAfterAnyKindOfCut() {
        let index = RevocationIndex()
        let session = UUID()
        #expect(index.isSessionAccepted(sessionId: session, userId: self.user, version: 0, epoch: 0))
        index.apply([self.entry(1, .subject(userId: self.user, acceptedFromVersion: 1))], now: self.now)
        #expect(!index.isSessionAccepted(sessionId: session, userId: self.user, version: 0, epoch: 0))
        #expect(index.isSessionAccepted(sessionId: session, userId: self.user, version: 1, epoch: 0))
    }
}
