import Foundation
import Testing
import TesseraCore

@testable import TesseraStore

/// The revocation feed's history: what a follower is sent for its cursor, batching, and when a cursor is gone.
@Suite struct RevocationFeedTests {
    static func entry(_ seq: Int64) -> RevocationEntry {
        RevocationEntry(seq: seq, kind: .session(id: UUID(), until: Date().addingTimeInterval(600)), revokedAt: Date(), actorId: nil, reason: nil)
    }

    static func sqlite(_ seq: Int64) -> RevocationLogCursor { RevocationLogCursor(cluster: "sqlite", position: String(seq)) }

    /// A follower that misses a row lets a revoked token through in another service: every row past a cursor must
    /// come, whatever the order of reads, batches and polls.
    @Test func aFollowerGetsEveryRowPastItsCursorWhateverTheOrderOfReadsAndPolls() async throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let feed = RevocationFeed(batchInterval: .milliseconds(10), keptRowLimit: 1_000_000)
            feed.restart(at: Self.sqlite(0))
            var written: Int64 = 0
            var followerCursor = try #require(feed.latest)
            var seen = Set<Int64>()
            for _ in 0..<Int.random(in: 1...30, using: &generator) {
                // The instance reads 0–3 new rows…
                let count = Int64.random(in: 0...3, using: &generator)
                let rows = (0..<count).map { Self.entry(written + 1 + $0) }
                written += count
                feed.record(rows, through: Self.sqlite(written))
                // …and the follower sometimes polls.
                if Bool.random(using: &generator) {
                    guard case .changes(let changes) = await feed.changes(after: followerCursor, wait: .zero) else { Issue.record("gone"); return }
                    seen.formUnion(changes.entries.map(\.seq))
                    followerCursor = changes.cursor
                }
            }
            // Rows still held for the batch interval go out with the next publication: poll until the follower stands
            // where the instance does (however slowly the machine runs the publication).
            for _ in 0..<100 where followerCursor != Self.sqlite(written) {
                guard case .changes(let last) = await feed.changes(after: followerCursor, wait: .milliseconds(200)) else { Issue.record("gone"); return }
                seen.formUnion(last.entries.map(\.seq))
                followerCursor = last.cursor
            }
            #expect(seen == Set((0..<written).map { $0 + 1 }), "rows missed: \(Set((0..<written).map { $0 + 1 }).subtracting(seen).sorted())")
        }
    }

    @Test func aLongPollIsAnsweredWhenRowsArriveAndAfterItsWaitWithNone() async throws {
        let feed = RevocationFeed(batchInterval: .milliseconds(10))
        feed.restart(at: Self.sqlite(0))
        let start = ContinuousClock.now
        guard case .changes(let heartbeat) = await feed.changes(after: Self.sqlite(0), wait: .milliseconds(200)) else { throw FeedTestFailure("gone") }
        #expect(heartbeat.entries.isEmpty && heartbeat.cursor == Self.sqlite(0))
        #expect(start.duration(to: .now) >= .milliseconds(200))

        let waiting = Task { await feed.changes(after: Self.sqlite(0), wait: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        let woken = ContinuousClock.now
        feed.record([Self.entry(1)], through: Self.sqlite(1))
        guard case .changes(let changes) = await waiting.value else { throw FeedTestFailure("gone") }
        #expect(changes.entries.map(\.seq) == [1] && changes.cursor == Self.sqlite(1))
        #expect(woken.duration(to: .now) < .seconds(1))
    }

    /// A thousand followers under a stream of revocations cost at most one answer each per interval, not one per row.
    @Test func rowsReadWithinOneIntervalArePublishedAsOneBatch() async throws {
        let feed = RevocationFeed(batchInterval: .milliseconds(300))
        feed.restart(at: Self.sqlite(0))
        let start = ContinuousClock.now
        feed.record([Self.entry(1)], through: Self.sqlite(1), at: start)
        feed.record([Self.entry(2)], through: Self.sqlite(2), at: start + .milliseconds(1))
        feed.record([Self.entry(3)], through: Self.sqlite(3), at: start + .milliseconds(2))
        // The first read is published at once; the next two wait for the interval and go out together.
        #expect(feed.latest == Self.sqlite(1))
        guard case .changes(let first) = await feed.changes(after: Self.sqlite(1), wait: .seconds(5)) else { throw FeedTestFailure("gone") }
        #expect(first.entries.map(\.seq) == [2, 3] && first.cursor == Self.sqlite(3))
    }

    @Test func aCursorOfAnotherDatabaseOrOlderThanWhatIsKeptIsGone() async throws {
        let feed = RevocationFeed(batchInterval: .milliseconds(10), keptRowLimit: 2, keptFor: .seconds(1_000_000))
        feed.restart(at: Self.sqlite(0))
        for seq in Int64(1)...4 {
            feed.record([Self.entry(seq)], through: Self.sqlite(seq), at: .now + .seconds(seq * 1000))
        }
        let other = RevocationLogCursor(cluster: "7311.1.1700000000.16384.boot", position: "10:10:")
        guard case .gone = await feed.changes(after: other, wait: .zero) else { throw FeedTestFailure("another database's cursor was accepted") }
        guard case .gone = await feed.changes(after: Self.sqlite(0), wait: .zero) else { throw FeedTestFailure("a cursor older than what is kept was accepted") }
        guard case .changes(let recent) = await feed.changes(after: Self.sqlite(2), wait: .zero) else { throw FeedTestFailure("gone") }
        #expect(recent.entries.map(\.seq) == [3, 4])

        // The database was replaced: every earlier cursor is gone, the new one works.
        feed.restart(at: other)
        guard case .gone = await feed.changes(after: Self.sqlite(4), wait: .zero) else { throw FeedTestFailure("a cursor of the old database was accepted") }
        guard case .changes = await feed.changes(after: other, wait: .zero) else { throw FeedTestFailure("the new cursor is gone") }
    }

    /// A follower that moves from an instance that has read further keeps its own cursor (it must not be sent back
    /// and lose rows), and is sent nothing it has already seen as new.
    @Test func aCursorFromAFresherInstanceOfASharedDatabaseIsKept() async throws {
        func postgres(_ xmax: Int) -> RevocationLogCursor { RevocationLogCursor(cluster: "7311.1.1700000000.16384.boot", position: "\(xmax):\(xmax):") }
        let feed = RevocationFeed(batchInterval: .milliseconds(10))
        feed.restart(at: postgres(10))
        feed.record([Self.entry(1)], through: postgres(11))
        guard case .changes(let answer) = await feed.changes(after: postgres(15), wait: .zero) else { throw FeedTestFailure("gone") }
        #expect(answer.entries.isEmpty && answer.cursor == postgres(15))
    }

    /// On SQLite one instance hands out every cursor: one ahead of it is from the file before it was restored, and
    /// taking it would skip the rows the restored file numbers again.
    @Test func aSQLiteCursorAheadOfTheInstanceIsGone() async throws {
        let feed = RevocationFeed(batchInterval: .milliseconds(10))
        feed.restart(at: Self.sqlite(300))
        guard case .gone = await feed.changes(after: Self.sqlite(500), wait: .zero) else { throw FeedTestFailure("a cursor from before a restore was kept") }
    }

    /// A SQLite file restored from a backup keeps its name but numbers rows again from where the backup ended: a cursor
    /// handed out before the restart would skip the rows numbered again. Every opening of the file names its cursors
    /// anew, so such a cursor is refused and its follower takes a snapshot.
    @Test func aSQLiteCursorFromBeforeARestartIsRefused() async throws {
        try await TestDatabase.with(.sqlite) { database in
            let before = try await database.withProcess { process in
                try await process.store.readRevocationLog(after: nil, pageSize: 100) { _ in }
            }
            try await database.withProcess { process in
                let again = try await process.store.readRevocationLog(after: nil, pageSize: 100) { _ in }
                #expect(again != before && again.cluster.hasPrefix("sqlite."))
                await #expect(throws: RevocationLogCursorInvalid.self) {
                    _ = try await process.store.readRevocationLog(after: before, pageSize: 100) { _ in }
                }
                _ = try await process.store.readRevocationLog(after: again, pageSize: 100) { _ in }
            }
        }
    }

    /// The PostgreSQL order of positions against what it must mean: every transaction one snapshot sees as finished,
    /// the other does too. Random snapshots, checked against visibility transaction by transaction.
    @Test func snapshotOrderAgreesWithVisibility() {
        var generator = SystemRandomNumberGenerator()
        func random() -> (text: String, sees: (UInt64) -> Bool) {
            let xmin = UInt64.random(in: 100...110, using: &generator)
            let xmax = xmin + UInt64.random(in: 0...8, using: &generator)
            let running = (xmin..<xmax).filter { _ in Bool.random(using: &generator) }
            let text = "\(xmin):\(xmax):" + running.map(String.init).joined(separator: ",")
            return (text, { xid in xid < xmax && !running.contains(xid) })
        }
        for _ in 0..<5000 {
            let (a, aSees) = random()
            let (b, bSees) = random()
            let truth = (90..<130).allSatisfy { xid in !aSees(UInt64(xid)) || bSees(UInt64(xid)) }
            let cursorA = RevocationLogCursor(cluster: "pg", position: a)
            let cursorB = RevocationLogCursor(cluster: "pg", position: b)
            #expect(cursorA.isWithin(cursorB) == truth, "\(a) within \(b)")
        }
        #expect(!RevocationLogCursor(cluster: "pg", position: "5:3:").isWithin(RevocationLogCursor(cluster: "pg", position: "9:9:")))
        #expect(!RevocationLogCursor(cluster: "pg", position: "1:9:").isWithin(RevocationLogCursor(cluster: "other", position: "1:9:")))
    }
}

struct FeedTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
