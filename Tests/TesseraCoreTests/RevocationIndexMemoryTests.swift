import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// A user's cut-off leaves memory once no token or session issued before it can still be presented, and not before.
@Suite struct RevocationIndexMemoryTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let lifetime = Duration.seconds(31 * 86_400)

    func subjectCut(_ seq: Int64, user: UUID, version: Int64, at date: Date) -> RevocationEntry {
        RevocationEntry(seq: seq, kind: .subject(userId: user, acceptedFromVersion: version), revokedAt: date, actorId: nil, reason: nil)
    }

    /// Attack stopped (against pruning too early): a stolen token issued just before a password change must stay
    /// refused for as long as any token of that time can be valid; only after that may the cut-off go.
    @Test func aCutOffStaysWhileATokenBeforeItCanBeValidThenGoes() {
        let index = RevocationIndex(cutoffLifetime: self.lifetime)
        let ann = UUID()
        index.apply([self.subjectCut(1, user: ann, version: 4, at: self.start)], now: self.start)
        let stolen = VerifiedAccessToken(
            userId: ann, sessionId: UUID(), jti: UUID(), role: .user, version: 3, epoch: 0, issuedAt: self.start, expiresAt: self.start.addingTimeInterval(900)
        )
        index.prune(now: self.start.addingTimeInterval(30 * 86_400))
        #expect(index.isRevoked(stolen), "still inside the lifetime: the cut-off stays")
        #expect(index.counts.subjects == 1)
        index.prune(now: self.start.addingTimeInterval(32 * 86_400))
        #expect(index.counts.subjects == 0, "past the lifetime: nothing it could refuse is valid any more")
    }

    /// A later cut of the same user keeps it: the clock restarts from the latest cut, not the first.
    @Test func aLaterCutOfTheSameUserKeepsItsCutOff() {
        let index = RevocationIndex(cutoffLifetime: self.lifetime)
        let ann = UUID()
        index.apply([self.subjectCut(1, user: ann, version: 2, at: self.start)], now: self.start)
        let later = self.start.addingTimeInterval(20 * 86_400)
        index.apply([self.subjectCut(2, user: ann, version: 5, at: later)], now: later)
        index.prune(now: self.start.addingTimeInterval(40 * 86_400))
        #expect(index.counts.subjects == 1)
        #expect(index.isRevoked(jti: UUID(), sessionId: UUID(), userId: ann, version: 4, epoch: 0))
        index.prune(now: later.addingTimeInterval(32 * 86_400))
        #expect(index.counts.subjects == 0)
    }

    /// Reading a whole log at start does not load cut-offs that are already too old to matter.
    @Test func oldCutOffsAreNotLoadedAtAll() {
        let index = RevocationIndex(cutoffLifetime: self.lifetime)
        let now = self.start.addingTimeInterval(100 * 86_400)
        let old = (0..<1000).map { self.subjectCut(Int64($0 + 1), user: UUID(), version: 1, at: self.start) }
        let recent = (0..<10).map { self.subjectCut(Int64($0 + 2000), user: UUID(), version: 1, at: now.addingTimeInterval(-86_400)) }
        index.apply(old + recent, now: now)
        #expect(index.counts.subjects == 10)
    }

    /// Memory follows the cut-offs of the last lifetime, not of all time: a million users who each once changed a
    /// password, spread over a year, leave about a lifetime's share in memory.
    @Test func memoryFollowsRecentCutsNotAllOfThem() {
        let index = RevocationIndex(cutoffLifetime: self.lifetime)
        let users = 100_000
        let year = 365.0 * 86_400
        for batch in 0..<100 {
            let at = self.start.addingTimeInterval(year * Double(batch) / 100)
            let entries = (0..<(users / 100)).map { offset in self.subjectCut(Int64(batch * 10_000 + offset + 1), user: UUID(), version: 1, at: at) }
            index.apply(entries, now: at)
            index.prune(now: at)
        }
        let kept = index.counts.subjects
        // 31 days of a 365-day spread: about 8.5 %, plus the batch granularity.
        #expect(kept > users * 7 / 100 && kept < users * 11 / 100, "kept \(kept) of \(users)")
    }

    /// Without a lifetime (tests, tools) nothing is dropped.
    @Test func withoutALifetimeEveryCutOffStays() {
        let index = RevocationIndex()
        index.apply([self.subjectCut(1, user: UUID(), version: 1, at: self.start)], now: self.start)
        index.prune(now: self.start.addingTimeInterval(10 * 365 * 86_400))
        #expect(index.counts.subjects == 1)
    }

    /// After a restore the whole log replaces the users' cut-offs (one undone there must not stay here); cut
    /// sessions and tokens stay cut (a failover must not revive a sign-out); freshness stays.
    @Test func replacingTheIndexDropsWhatTheLogNoLongerHas() {
        let index = RevocationIndex()
        let ann = UUID()
        let signedOut = UUID()
        index.apply([
            self.subjectCut(1, user: ann, version: 9, at: self.start),
            RevocationEntry(seq: 2, kind: .session(id: signedOut, until: self.start.addingTimeInterval(900)), revokedAt: self.start, actorId: nil, reason: nil),
        ], now: self.start)
        index.markSynced()
        index.replace(with: [self.subjectCut(1, user: UUID(), version: 2, at: self.start)], now: self.start)
        #expect(!index.isRevoked(jti: UUID(), sessionId: UUID(), userId: ann, version: 3, epoch: 0))
        #expect(index.isRevoked(jti: UUID(), sessionId: signedOut, userId: UUID(), version: 0, epoch: 0))
        #expect(index.counts.subjects == 1)
        #expect(index.isCurrent())
    }
}
