import Foundation
import Testing

@testable import TesseraCore

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
