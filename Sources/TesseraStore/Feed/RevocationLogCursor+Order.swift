import TesseraCore

extension RevocationLogCursor {
    /// Whether every row this position has seen, `other` has seen too: a follower whose cursor is `other` misses
    /// nothing that lies before `self`. False for positions of different databases, and for ones that cannot be read.
    ///
    /// SQLite: positions are `seq` values (one writer: `seq` order is commit order). PostgreSQL: positions are
    /// snapshots `xmin:xmax:xip,…`; a transaction is seen by one when it is below `xmax` and not in `xip`, so `self`
    /// is within `other` when each transaction `self` sees is below `other.xmax` (those from `other.xmax` up were
    /// running in `self`) and none of them was running in `other`.
    public func isWithin(_ other: RevocationLogCursor) -> Bool {
        guard self.cluster == other.cluster else { return false }
        if let mine = Int64(self.position), let theirs = Int64(other.position) { return mine <= theirs }
        guard let mine = Snapshot(self.position), let theirs = Snapshot(other.position) else { return false }
        if mine.xmax > theirs.xmax {
            let unseenAbove = mine.xmax - max(theirs.xmax, mine.xmin)
            guard theirs.xmax >= mine.xmin, unseenAbove <= UInt64(mine.running.count) else { return false }
            guard (theirs.xmax..<mine.xmax).allSatisfy({ mine.running.contains($0) }) else { return false }
        }
        return theirs.running.allSatisfy { $0 >= mine.xmax || mine.running.contains($0) }
    }

    /// Whether several instances follow this database (PostgreSQL), so that a follower's cursor may be ahead of one
    /// instance's view; SQLite is served by one.
    public var isShared: Bool { !self.cluster.hasPrefix("sqlite") }

    /// A PostgreSQL snapshot in its text form (`pg_current_snapshot()::text`).
    struct Snapshot {
        var xmin: UInt64
        var xmax: UInt64
        var running: Set<UInt64>

        init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, let xmin = UInt64(parts[0]), let xmax = UInt64(parts[1]), xmin <= xmax else { return nil }
            var running = Set<UInt64>()
            if !parts[2].isEmpty {
                for item in parts[2].split(separator: ",", omittingEmptySubsequences: false) {
                    guard let xid = UInt64(item), xid >= xmin, xid < xmax else { return nil }
                    running.insert(xid)
                }
            }
            self.xmin = xmin
            self.xmax = xmax
            self.running = running
        }
    }
}
