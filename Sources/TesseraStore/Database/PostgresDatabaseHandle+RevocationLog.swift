import Foundation
import NIOConcurrencyHelpers
import NIOCore
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
        || '.' || COALESCE((SELECT token FROM tessera_boot WHERE id = 1), 'none')
        """

    /// The boot token lives in an UNLOGGED table, which crash recovery empties: the postmaster's start time does not
    /// change when it recovers from a crashed backend by itself (`restart_after_crash`), the token does. A read
    /// finding none sets a new one (and, its identity changed, the follower reloads).
    static let bootToken = "INSERT INTO tessera_boot (id, token) VALUES (1, gen_random_uuid()::text) ON CONFLICT (id) DO NOTHING"

    /// One log row as a packed binary record (big-endian, PostgreSQL's `*send` forms), so that a page of ten
    /// thousand rows arrives as one `bytea` value: see ``PackedLogRecords``.
    static let packedRecord = """
        int8send(seq)
        || CASE kind WHEN 'token' THEN '\\x01'::bytea WHEN 'session' THEN '\\x02'::bytea WHEN 'subject' THEN '\\x03'::bytea
                     WHEN 'global' THEN '\\x04'::bytea WHEN 'key' THEN '\\x05'::bytea ELSE '\\x00'::bytea END
        || CASE WHEN (CASE kind WHEN 'token' THEN jti WHEN 'session' THEN session_id ELSE user_id END) IS NULL THEN '\\x00'::bytea
                ELSE '\\x01'::bytea || uuid_send((CASE kind WHEN 'token' THEN jti WHEN 'session' THEN session_id ELSE user_id END)::uuid) END
        || CASE WHEN (CASE kind WHEN 'subject' THEN accepted_from_version WHEN 'global' THEN epoch ELSE until_at END) IS NULL THEN '\\x00'::bytea
                ELSE '\\x01'::bytea || int8send(CASE kind WHEN 'subject' THEN accepted_from_version WHEN 'global' THEN epoch ELSE until_at END) END
        || int8send(revoked_at)
        || CASE WHEN actor_id IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || uuid_send(actor_id::uuid) END
        || CASE WHEN reason IS NULL THEN '\\x00'::bytea
                ELSE '\\x01'::bytea || int4send(octet_length(convert_to(reason, 'UTF8'))) || convert_to(reason, 'UTF8') END
        || CASE WHEN key_id IS NULL THEN '\\x00'::bytea
                ELSE '\\x01'::bytea || int4send(octet_length(convert_to(key_id, 'UTF8'))) || convert_to(key_id, 'UTF8') END
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
                try await self.followerClient.withConnection { connection in
                    if let cursor, let quick = try await Self.readSince(cursor, pageSize: pageSize, on: connection, logger: logger) {
                        if !quick.entries.isEmpty { try onPage(quick.entries) }
                        return quick.cursor
                    }
                    try await connection.query(PostgresQuery(unsafeSQL: Self.bootToken), logger: logger)
                    return try await Self.inSnapshot(on: connection, logger: logger) {
                        try await Self.readLog(after: cursor, pageSize: pageSize, onPage: onPage, on: connection, helper: self.client, logger: logger)
                    }
                }
            }
        } catch {
            throw Self.translate(error)
        }
    }

    /// The usual read, a few rows since the last: one statement, one round trip. A statement sees one snapshot, and
    /// `pg_current_snapshot()` inside it is that snapshot, so the rows and the next cursor agree as they do in the
    /// paged read's transaction. Nil when there are more rows than a page (then the paged read runs).
    private static func readSince(
        _ cursor: RevocationLogCursor, pageSize: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> (entries: [RevocationEntry], cursor: RevocationLogCursor)? {
        let previous = cursor.position
        var query: PostgresQuery = """
            SELECT \(unescaped: Self.clusterIdentity) AS cluster, pg_current_snapshot()::text AS snapshot,
                   pg_snapshot_xmax(pg_current_snapshot()) < pg_snapshot_xmax(\(previous)::pg_snapshot) AS went_back,
                   count(*)::int8 AS n, string_agg(record, ''::bytea) AS records
            FROM (SELECT seq, 
            """
        query.sql += Self.packedRecord
        query.sql += " AS record FROM revocations WHERE "
        let condition = Self.committedSince(previous)
        query.sql += condition.sql
        query.binds = condition.binds
        query.sql += " ORDER BY seq LIMIT \(pageSize)) page"
        var result: (entries: [RevocationEntry], cursor: RevocationLogCursor)?
        let decoded = try await connection.query(query, logger: logger).decode((String, String, Bool, Int64, ByteBuffer?).self)
        for try await (cluster, snapshot, wentBack, count, packed) in decoded {
            // Transaction ids never go back on one cluster; if they did, the cursor cannot be trusted.
            guard cluster == cursor.cluster, !wentBack else {
                throw RevocationLogCursorInvalid(expectedCluster: cursor.cluster, foundCluster: wentBack ? cluster + " (transaction ids went back)" : cluster)
            }
            guard count < pageSize else { return nil }
            result = (try PackedLogRecords.page(packed, count: count), RevocationLogCursor(cluster: cluster, position: snapshot))
        }
        return result
    }

    /// The rows a cursor's snapshot `previous` did not see as committed and the statement's snapshot does: those of
    /// transactions that started after it (`xid >= xmax`) or were still running in it (`xip`); with `seqAbove`, only
    /// those past that `seq` (the next page). `$1` is `previous`.
    private static func committedSince(_ previous: String, seqAbove after: Int64? = nil) -> PostgresQuery {
        var condition: PostgresQuery = """
            (xid >= pg_snapshot_xmax(\(previous)::pg_snapshot) OR xid IN (SELECT pg_snapshot_xip(\(previous)::pg_snapshot)))
              AND pg_visible_in_snapshot(xid, pg_current_snapshot())
            """
        if let after {
            condition.binds.append(after)
            condition.sql += " AND seq > $\(condition.binds.count)"
        }
        return condition
    }

    /// Runs `body` in a `REPEATABLE READ READ ONLY` transaction on `connection` (in the snapshot another transaction
    /// exported, when `importing` names one), committed when it returns and rolled back when it throws.
    private static func inSnapshot<T>(
        importing exported: String? = nil, on connection: PostgresConnection, logger: Logger, _ body: () async throws -> T
    ) async throws -> T {
        try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
        do {
            if let exported { try await connection.query(PostgresQuery(unsafeSQL: "SET TRANSACTION SNAPSHOT '\(exported)'"), logger: logger) }
            let value = try await body()
            try await connection.query("COMMIT", logger: logger)
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    private static func readLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void, on connection: PostgresConnection,
        helper: PostgresClient, logger: Logger
    ) async throws -> RevocationLogCursor {
        var cluster = ""
        var snapshot = ""
        var exported = ""
        let exporting = cursor == nil ? "pg_export_snapshot()" : "''"
        for try await (identity, current, export) in try await connection.query(
            "SELECT \(unescaped: Self.clusterIdentity) AS cluster, pg_current_snapshot()::text AS snapshot, \(unescaped: exporting) AS exported",
            logger: logger
        ).decode((String, String, String).self) {
            cluster = identity
            snapshot = current
            exported = export
        }
        let next = RevocationLogCursor(cluster: cluster, position: snapshot)
        if let cursor {
            guard cursor.cluster == cluster else { throw RevocationLogCursorInvalid(expectedCluster: cursor.cluster, foundCluster: cluster) }
            let previous = cursor.position
            try await Self.readPages(after: 0, pageSize: pageSize, onPage: onPage, on: connection, logger: logger) { after in
                Self.committedSince(previous, seqAbove: after)
            }
            return next
        }
        // The whole log (a start, a reload): two connections read the two halves of the `seq` range in this one
        // snapshot (exported, as pg_dump's parallel workers share one), so that PostgreSQL builds pages on both
        // cores; `onPage` is still called for one page at a time.
        guard !exported.isEmpty, exported.allSatisfy({ $0.isHexDigit || $0 == "-" }) else {
            throw CorruptRow(description: "PostgreSQL exported a snapshot named \(exported.debugDescription)")
        }
        var low: Int64 = 0
        var high: Int64 = 0
        for try await (first, last) in try await connection.query(
            "SELECT COALESCE(min(seq), 0)::int8 AS low, COALESCE(max(seq), 0)::int8 AS high FROM revocations", logger: logger
        ).decode((Int64, Int64).self) {
            low = first
            high = last
        }
        let middle = low + (high - low) / 2
        let applying = NIOLock()
        let apply: @Sendable ([RevocationEntry]) throws -> Void = { entries in try applying.withLock { try onPage(entries) } }
        async let upperHalf: Void = helper.withConnection { second in
            try await Self.inSnapshot(importing: exported, on: second, logger: logger) {
                try await Self.readPages(after: middle, pageSize: pageSize, onPage: apply, on: second, logger: logger) { after in "seq > \(after)" }
            }
        }
        try await Self.readPages(after: low - 1, pageSize: pageSize, onPage: apply, on: connection, logger: logger) { after in
            "seq > \(after) AND seq <= \(middle)"
        }
        try await upperHalf
        return next
    }

    /// Reads the rows `condition(after)` selects, a page at a time in `seq` order, each page decoded and applied
    /// while PostgreSQL builds the next one.
    private static func readPages(
        after start: Int64, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void, on connection: PostgresConnection,
        logger: Logger, where condition: (Int64) -> PostgresQuery
    ) async throws {
        var after = start
        var decoding: Task<Void, any Error>?
        defer { decoding?.cancel() }
        while true {
            let selected = condition(after)
            // The records of a page need no order: the index applies rows in any order (a user's or the global
            // cut-off keeps the row with the highest seq), so the aggregate does not sort them again.
            var query: PostgresQuery = "SELECT count(*)::int8 AS n, max(seq) AS last, string_agg(record, ''::bytea) AS records FROM (SELECT seq, "
            query.sql += Self.packedRecord + " AS record FROM revocations WHERE "
            query.sql += selected.sql
            query.binds = selected.binds
            query.sql += " ORDER BY seq LIMIT \(pageSize)) page"
            var count: Int64 = 0
            var records: ByteBuffer?
            for try await (rows, last, packed) in try await connection.query(query, logger: logger).decode((Int64, Int64?, ByteBuffer?).self) {
                count = rows
                records = packed
                if let last { after = last }
            }
            // One page decodes while the next is built; the next waits for it, so this reader calls `onPage` for
            // one page at a time.
            try await decoding?.value
            let expected = count
            decoding = records.map { packed in Task { try onPage(try PackedLogRecords.page(packed, count: expected)) } }
            if count < pageSize {
                try await decoding?.value
                return
            }
        }
    }
}

/// Reads the packed records ``PostgresDatabaseHandle/packedRecord`` makes. A page of rows comes as one `bytea`
/// instead of ten thousand rows of seven cells: PostgresNIO's per-row and per-cell work (messages, cells, column
/// names) was most of a 4.5–5 s start on a million rows (perf), which this cuts to one buffer walk.
enum PackedLogRecords {
    /// A page's records (nil when the page is empty), which must be `count` rows.
    static func page(_ packed: ByteBuffer?, count: Int64) throws -> [RevocationEntry] {
        var entries: [RevocationEntry] = []
        if var buffer = packed {
            entries.reserveCapacity(Int(count))
            try Self.decode(&buffer, into: &entries)
        }
        guard entries.count == count else { throw CorruptRow(description: "a page of the revocation log decoded to \(entries.count) rows of \(count)") }
        return entries
    }

    static func decode(_ buffer: inout ByteBuffer, into entries: inout [RevocationEntry]) throws {
        func corrupt() -> CorruptRow { CorruptRow(description: "a packed revocation record is malformed") }
        // Straight from the buffer's bytes: no array, no string in between (a million of each at start-up).
        func uuid() throws -> UUID {
            guard buffer.readableBytes >= 16 else { throw corrupt() }
            let uuid = buffer.withUnsafeReadableBytes { raw in
                UUID(uuid: (raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]))
            }
            buffer.moveReaderIndex(forwardBy: 16)
            return uuid
        }
        func flag() throws -> Bool {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw corrupt() }
            return byte == 1
        }
        func present<Value>(_ value: Value?, _ name: String) throws -> Value {
            guard let value else { throw CorruptRow(description: "revocations.\(name) is missing") }
            return value
        }
        while buffer.readableBytes > 0 {
            guard let seq = buffer.readInteger(as: Int64.self), let kindCode = buffer.readInteger(as: UInt8.self) else { throw corrupt() }
            let target = try flag() ? try uuid() : nil
            let value = try flag() ? buffer.readInteger(as: Int64.self) : nil
            guard let revokedAt = buffer.readInteger(as: Int64.self) else { throw corrupt() }
            let actorId = try flag() ? try uuid() : nil
            func text() throws -> String? {
                guard try flag() else { return nil }
                guard let length = buffer.readInteger(as: Int32.self), length >= 0, let text = buffer.readString(length: Int(length)) else { throw corrupt() }
                return text
            }
            let reason = try text()
            let keyId = try text()
            // The same rules as `RevocationLogRow.entry()`, the SQL reader's (a test requires both to agree).
            let kind: RevocationKind
            switch kindCode {
            case 1: kind = .token(jti: try present(target, "jti"), until: Column.date(try present(value, "until_at")))
            case 2: kind = .session(id: try present(target, "session_id"), until: Column.date(try present(value, "until_at")))
            case 3: kind = .subject(userId: try present(target, "user_id"), acceptedFromVersion: try present(value, "accepted_from_version"))
            case 4: kind = .global(epoch: try present(value, "epoch"))
            case 5: kind = .key(kid: try present(keyId, "key_id"))
            default: throw CorruptRow(description: "unknown revocation kind")
            }
            entries.append(RevocationEntry(seq: seq, kind: kind, revokedAt: Column.date(revokedAt), actorId: actorId, reason: reason))
        }
    }
}
