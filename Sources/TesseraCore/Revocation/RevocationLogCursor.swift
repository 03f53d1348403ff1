import TesseraTokens

/// Where a follower stands in the revocation log, as the store that wrote it understands it.
///
/// The position is opaque outside the store: on SQLite it is the last `seq` read (one writer, so `seq` order is
/// commit order); on PostgreSQL it is the snapshot taken at the previous read (`pg_current_snapshot()`), and a read
/// returns the rows whose transactions that snapshot did not yet see — complete under concurrent writers, whose
/// sequence numbers commit out of order. `cluster` names the database the position belongs to: a cursor presented
/// to another (a restored or failed-over cluster) is refused with ``RevocationLogCursorInvalid`` and the follower
/// reads the whole log again.
public struct RevocationLogCursor: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var cluster: String
    public var position: String

    public init(cluster: String, position: String) {
        self.cluster = cluster
        self.position = position
    }

    public var description: String { "\(self.cluster)@\(self.position)" }
}

/// A cursor from another database than the one being read (restored, failed over, replaced): the rows past it
/// cannot be known, so the follower must read the whole log and replace its index.
public struct RevocationLogCursorInvalid: Error, CustomStringConvertible {
    public var expectedCluster: String
    public var foundCluster: String

    public init(expectedCluster: String, foundCluster: String) {
        self.expectedCluster = expectedCluster
        self.foundCluster = foundCluster
    }

    public var description: String {
        "the revocation log cursor belongs to database \(self.expectedCluster), but the database is now \(self.foundCluster)"
    }
}
