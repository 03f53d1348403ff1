import Foundation
import PostgresNIO
import TesseraCore

extension PostgresDatabaseHandle {
    /// Names the database a cursor belongs to: the cluster (`system_identifier`, new for every `initdb` and so for
    /// every restore into a new cluster), its timeline (new after a point-in-time recovery or a promoted standby),
    /// the server's start (a crash and its recovery may hand out again the ids of transactions whose records were
    /// not yet on disk, such as an aborted one the previous snapshot counted as finished), and the database's oid
    /// (new when it is dropped and restored). Any change means rows the cursor claims to have seen may be gone, or
    /// rows it has not seen may look old: the follower reads the whole log again.
    static let clusterIdentity = """
        (SELECT system_identifier::text FROM pg_control_system()) || '.' || (SELECT timeline_id::text FROM pg_control_checkpoint())
        || '.' || (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint::text
        || '.' || (SELECT oid::text FROM pg_database WHERE datname = current_database())
        """

    /// How long a whole read of the log may take (a start on a million rows); an incremental read has the usual bound.
    static let wholeLogTimeout: Duration = .seconds(120)

    /// Reads in one `REPEATABLE READ` transaction, whose snapshot becomes the next cursor. With a cursor, the rows
    /// returned are those whose writing transaction (`xid`) the previous snapshot did not see as committed but this
    /// one does: a transaction that was still open at the last read, whatever its `seq`, is read now; one that
    /// commits after this read is not visible in this snapshot and is read next time. `xid >= xmin(previous)`
    /// bounds the scan through the `xid` index: an unrelated long transaction holds `xmin` back and makes each read
    /// scan the rows written since it began, but never makes one wait.
    public func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor {
        let logger = self.logger
        let limit = cursor == nil ? Self.wholeLogTimeout : Self.operationTimeout
        do {
            return try await Deadline.run(within: limit) {
                try await self.client.withConnection { connection in
                    try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                    do {
                        let read = try await Self.readLog(after: cursor, pageSize: pageSize, onPage: onPage, on: connection, logger: logger)
                        try await connection.query("COMMIT", logger: logger)
                        return read
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: logger)
                        throw error
                    }
                }
            }
        } catch {
            throw Self.translate(error)
        }
    }

    private static func readLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @Sendable ([RevocationEntry]) throws -> Void, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> RevocationLogCursor {
        var cluster = ""
        var snapshot = ""
        for try await (identity, current) in try await connection.query(
            "SELECT \(unescaped: Self.clusterIdentity) AS cluster, pg_current_snapshot()::text AS snapshot", logger: logger
        ).decode((String, String).self) {
            cluster = identity
            snapshot = current
        }
        if let cursor, cursor.cluster != cluster {
            throw RevocationLogCursorInvalid(expectedCluster: cursor.cluster, foundCluster: cluster)
        }
        var after: Int64 = 0
        while true {
            let query: PostgresQuery
            if let previous = cursor?.position {
                query = """
                    SELECT \(unescaped: SQLAuthStore.revocationLogColumns) FROM revocations
                    WHERE xid >= pg_snapshot_xmin(\(previous)::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, \(previous)::pg_snapshot)
                      AND pg_visible_in_snapshot(xid, pg_current_snapshot()) AND seq > \(after)
                    ORDER BY seq LIMIT \(pageSize)
                    """
            } else {
                query = "SELECT \(unescaped: SQLAuthStore.revocationLogColumns) FROM revocations WHERE seq > \(after) ORDER BY seq LIMIT \(pageSize)"
            }
            var entries: [RevocationEntry] = []
            entries.reserveCapacity(min(pageSize, 10_000))
            let rows = try await connection.query(query, logger: logger)
            for try await (seq, kind, target, value, revokedAt, actorId, reason) in rows.decode(
                (Int64?, String?, String?, Int64?, Int64?, String?, String?).self
            ) {
                entries.append(
                    try RevocationLogRow(seq: seq, kind: kind, target: target, value: value, revokedAt: revokedAt, actorId: actorId, reason: reason)
                        .entry()
                )
            }
            if let last = entries.last {
                try onPage(entries)
                after = last.seq
            }
            if entries.count < pageSize { return RevocationLogCursor(cluster: cluster, position: snapshot) }
        }
    }
}
