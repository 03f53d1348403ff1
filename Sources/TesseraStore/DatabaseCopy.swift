import Foundation
import Logging
import SQLKit
import TesseraCore

/// Copies everything Tessera keeps from one database into an empty one (SQLite to PostgreSQL, to move up to several
/// instances): accounts, sessions and refresh-token state, the revocation log, the audit trail and the identity
/// conflicts, with their ids and sequence numbers as they are, so that every token issued before the copy keeps
/// working after it and every revoked one stays revoked. One transaction per batch of each table; the counts of
/// both sides are compared at the end. A target that already holds anything is refused before anything is written.
public struct DatabaseCopy: Sendable {
    let source: any SQLDatabaseHandle
    let target: any SQLDatabaseHandle
    let logger: Logger
    /// Rows per batch (and per transaction).
    static let batchSize = 500

    public init(from source: any SQLDatabaseHandle, to target: any SQLDatabaseHandle, logger: Logger) {
        self.source = source
        self.target = target
        self.logger = logger
    }

    enum ColumnType { case text, integer }

    struct Table: Sendable {
        let name: String
        let columns: [(String, ColumnType)]
        /// The unique key to page by (keyset paging: each page starts after the last row of the previous one); empty
        /// pages by offset, for a small table with no key.
        let key: [String]
        /// The auto-numbered column whose numbering continues after the copied rows.
        let numbered: String?
    }

    /// Every table of the schema at ``Migrations/latestVersion``, parents before children. Failed sign-ins are not
    /// copied: they are minutes old at most and keyed by what the old server saw.
    static let tables: [Table] = [
        Table(
            name: "users",
            columns: [
                ("id", .text), ("email", .text), ("email_normalized", .text), ("password_hash", .text), ("role", .text), ("is_active", .integer),
                ("token_version", .integer), ("accepted_from_version", .integer), ("created_at", .integer), ("updated_at", .integer),
                ("deleted_at", .integer),
            ],
            key: ["id"], numbered: nil
        ),
        Table(
            name: "sessions",
            columns: [
                ("id", .text), ("user_id", .text), ("refresh_token_hash", .text), ("created_at", .integer), ("last_seen_at", .integer),
                ("expires_at", .integer), ("ip", .text), ("user_agent", .text), ("device_name", .text), ("terminal_id", .text),
                ("token_version", .integer), ("epoch", .integer), ("invalidated_at", .integer), ("invalidated_reason", .text),
            ],
            key: ["id"], numbered: nil
        ),
        Table(
            name: "spent_refresh_tokens",
            columns: [("token_hash", .text), ("session_id", .text), ("spent_at", .integer), ("user_agent_hash", .text), ("client_nonce_hash", .text)],
            key: ["token_hash"], numbered: nil
        ),
        Table(
            name: "revocations",
            columns: [
                ("seq", .integer), ("kind", .text), ("jti", .text), ("session_id", .text), ("user_id", .text), ("accepted_from_version", .integer),
                ("epoch", .integer), ("until_at", .integer), ("revoked_at", .integer), ("actor_id", .text), ("reason", .text),
                ("previous_value", .integer), ("undoes_seq", .integer), ("cause", .text), ("key_id", .text),
            ],
            key: ["seq"], numbered: "seq"
        ),
        Table(
            name: "audit_events",
            columns: [
                ("id", .integer), ("at", .integer), ("event", .text), ("actor_id", .text), ("subject_id", .text), ("session_id", .text),
                ("terminal_id", .text), ("ip", .text), ("user_agent", .text), ("details", .text),
            ],
            key: ["id"], numbered: "id"
        ),
        Table(name: "audit_subjects", columns: [("audit_id", .integer), ("subject_id", .text)], key: ["audit_id", "subject_id"], numbered: nil),
        Table(
            name: "identity_conflicts",
            columns: [("user_id", .text), ("email", .text), ("problem", .text), ("other_user_id", .text), ("found_at", .integer)],
            key: [], numbered: nil
        ),
        // Sealed private keys are copied sealed: the target's instances need the same key-encryption keys.
        Table(
            name: "signing_keys",
            columns: [
                ("kid", .text), ("algorithm", .text), ("public_key", .text), ("sealed_private_key", .text), ("sealed_with", .text),
                ("created_at", .integer), ("active_from", .integer), ("retired_at", .integer), ("revoked_at", .integer), ("destroyed_at", .integer),
            ],
            key: ["kid"], numbered: nil
        ),
        Table(
            name: "oauth_clients",
            columns: [
                ("id", .text), ("name", .text), ("secret_hash", .text), ("may_introspect", .integer), ("may_revoke", .integer), ("may_feed", .integer),
                ("created_at", .integer), ("removed_at", .integer),
            ],
            key: ["id"], numbered: nil
        ),
        Table(
            name: "api_tokens",
            columns: [
                ("id", .text), ("user_id", .text), ("name", .text), ("token_hash", .text), ("role", .text), ("token_version", .integer),
                ("epoch", .integer), ("created_at", .integer), ("ip", .text), ("user_agent", .text), ("last_used_at", .integer),
                ("expires_at", .integer), ("invalidated_at", .integer),
            ],
            key: ["id"], numbered: nil
        ),
    ]

    /// What was copied: rows per table, in order, and the global epoch.
    public struct Report: Sendable, Equatable {
        public var rows: [String: Int] = [:]
        public var order: [String] = []
        public var globalEpoch: Int64 = 0
        public var acceptedEpoch: Int64 = 0
    }

    /// Copies, then verifies. Both databases must be at the latest schema version (the target is migrated by
    /// whoever opened it; the source must have been, so that no column is missing).
    public func run() async throws -> Report {
        let sourceVersion = try await Migrator(database: self.source, logger: self.logger).currentVersion()
        guard sourceVersion == Migrations.latestVersion else {
            throw CopyError(
                description: "the source database is at schema version \(sourceVersion), not \(Migrations.latestVersion): run `tessera migrate` on it first"
            )
        }
        for table in ["users", "sessions", "revocations", "audit_events"] {
            let count = try await Self.count(table, on: self.target)
            guard count == 0 else {
                throw CopyError(description: "the target database is not empty (\(table) has \(count) rows); copy only into a new, empty database")
            }
        }
        var report = Report()
        for table in Self.tables {
            report.rows[table.name] = try await self.copy(table)
            report.order.append(table.name)
        }
        let epochs: [Int64] = try await self.source.read { db in
            guard let row = try await db.raw("SELECT epoch, accepted_epoch FROM global_state WHERE id = 1").first() else { return [0, 0] }
            return [try row.decode(column: "epoch", as: Int64.self), try row.decode(column: "accepted_epoch", as: Int64.self)]
        }
        try await self.target.transaction { db in
            try await db.raw("UPDATE global_state SET epoch = \(bind: epochs[0]), accepted_epoch = \(bind: epochs[1]) WHERE id = 1").run()
        }
        report.globalEpoch = epochs[0]
        report.acceptedEpoch = epochs[1]
        for table in Self.tables {
            let copied = try await Self.count(table.name, on: self.target)
            guard copied == report.rows[table.name] else {
                throw CopyError(description: "\(table.name): \(report.rows[table.name] ?? 0) rows read but \(copied) in the target; the copy is incomplete")
            }
        }
        return report
    }

    static func count(_ table: String, on database: any SQLDatabaseHandle) async throws -> Int {
        try await database.read { db in
            try await db.raw("SELECT COUNT(*) AS n FROM \(unsafeRaw: table)").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    private func copy(_ table: Table) async throws -> Int {
        let columns = table.columns.map(\.0).joined(separator: ", ")
        let order = table.key.isEmpty ? columns : table.key.joined(separator: ", ")
        let keyPositions = table.key.compactMap { key in table.columns.firstIndex { $0.0 == key } }
        var copied = 0
        var lastKey: [any Encodable & Sendable]?
        while true {
            let page = copied
            let after = lastKey
            let rows: [[any Encodable & Sendable]] = try await self.source.read { db in
                var sql: SQLQueryString = "SELECT \(unsafeRaw: columns) FROM \(unsafeRaw: table.name)"
                // A row value comparison, `(a, b) > (?, ?)`, for a key of several columns (SQLite ≥ 3.15, PostgreSQL).
                if let after { sql += " WHERE (\(unsafeRaw: order)) > (\(SQLList(after.map { SQLBind($0) })))" }
                sql += " ORDER BY \(unsafeRaw: order) LIMIT \(literal: Self.batchSize)"
                if table.key.isEmpty { sql += " OFFSET \(literal: page)" }
                return try await db.raw(sql).all().map { row in
                    try table.columns.map { name, type -> any Encodable & Sendable in
                        switch type {
                        case .text: return try row.decode(column: name, as: String?.self)
                        case .integer: return try row.decode(column: name, as: Int64?.self)
                        }
                    }
                }
            }
            guard !rows.isEmpty else { break }
            try await DatabaseWork.$isLong.withValue(true) {
                try await self.target.transaction { db in
                    var insert: SQLQueryString = "INSERT INTO \(unsafeRaw: table.name) (\(unsafeRaw: columns)) VALUES "
                    for (index, row) in rows.enumerated() {
                        if index > 0 { insert += ", " }
                        insert += "(\(SQLList(row.map { SQLBind($0) })))"
                    }
                    try await db.raw(insert).run()
                }
            }
            copied += rows.count
            if !keyPositions.isEmpty { lastKey = keyPositions.map { rows[rows.count - 1][$0] } }
            self.logger.debug("copied", metadata: ["table": "\(table.name)", "rows": "\(copied)"])
            if rows.count < Self.batchSize { break }
        }
        if let numbered = table.numbered {
            try await self.target.transaction { db in try await self.target.continueNumbering(table.name, column: numbered, on: db) }
        }
        return copied
    }
}

/// A copy that cannot be made (or was not made completely).
public struct CopyError: Error, CustomStringConvertible {
    public var description: String
}
