import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    public func recordAudit(_ record: AuditRecord) async throws {
        try await self.database.transaction { db in
            try await Self.insertAudit(record, on: db)
        }
    }

    public func auditEvents(_ query: AuditQuery) async throws -> [AuditRecord] {
        var conditions: [SQLQueryString] = []
        if let userId = query.userId {
            let id = Column.id(userId)
            // A set of ids, not a join: each row comes back once however many of its subjects match, so paging by id
            // stays exact; and each part is answered by its own index (an OR with EXISTS scanned the whole table).
            conditions.append(
                """
                id IN (SELECT id FROM audit_events WHERE actor_id = \(bind: id) UNION ALL SELECT id FROM audit_events WHERE subject_id = \(bind: id)
                       UNION ALL SELECT audit_id FROM audit_subjects WHERE subject_id = \(bind: id))
                """
            )
        }
        if let event = query.event { conditions.append("event = \(bind: event.rawValue)") }
        if let since = query.since { conditions.append("at >= \(bind: Column.millis(since))") }
        if let until = query.until { conditions.append("at < \(bind: Column.millis(until))") }
        if let beforeId = query.beforeId { conditions.append("id < \(bind: beforeId)") }
        var sql: SQLQueryString = "SELECT * FROM audit_events"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY id DESC LIMIT \(literal: max(1, min(query.limit, 1000)))"
        let statement = sql
        return try await self.database.read { db in
            var records = try await db.raw(statement).all().map { try $0.auditRecord() }
            // Only a row with no single subject can have several; most pages hold none and need no second read.
            let multiSubject = records.filter { $0.subjectId == nil }.compactMap(\.id)
            guard !multiSubject.isEmpty else { return records }
            let subjects = try await Self.auditSubjects(of: multiSubject, on: db)
            for index in records.indices {
                if let id = records[index].id, let ids = subjects[id] { records[index].subjectIds = ids }
            }
            return records
        }
    }

    /// Appends one audit row, and one `audit_subjects` row per subject of a multi-subject event, inside the
    /// caller's transaction.
    static func insertAudit(_ record: AuditRecord, on db: any SQLDatabase) async throws {
        let details = try Self.encodedDetails(record)
        let inserted = try await db.raw(
            """
            INSERT INTO audit_events (at, event, actor_id, subject_id, session_id, terminal_id, ip, user_agent, details)
            VALUES (\(bind: Column.millis(record.at)), \(bind: record.event.rawValue), \(bind: record.actorId.map(Column.id)),
                    \(bind: record.subjectId.map(Column.id)), \(bind: record.sessionId.map(Column.id)), \(bind: record.terminalId),
                    \(bind: record.ip), \(bind: record.userAgent), \(bind: details))
            RETURNING id
            """
        ).first()
        guard !record.subjectIds.isEmpty else { return }
        guard let auditId = try inserted?.decode(column: "id", as: Int64.self) else { throw CorruptRow(description: "audit insert returned no id") }
        try await Self.insertAuditSubjects(Set(record.subjectIds.map(Column.id)), of: auditId, on: db)
    }

    /// An audit row's details as stored: JSON with sorted keys.
    static func encodedDetails(_ record: AuditRecord) throws -> String {
        try Self.encodedDetails(record.details)
    }

    /// Details as stored: JSON with sorted keys.
    static func encodedDetails(_ details: [String: String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(details), as: UTF8.self)
    }

    /// Records that the audit row `auditId` acted on each of these accounts (lower-case UUID text).
    static func insertAuditSubjects(_ subjectIds: Set<String>, of auditId: Int64, on db: any SQLDatabase) async throws {
        for subjectId in subjectIds.sorted() {
            try await db.raw("INSERT INTO audit_subjects (audit_id, subject_id) VALUES (\(bind: auditId), \(bind: subjectId))").run()
        }
    }

    /// The subjects of these audit rows, each list in id order.
    private static func auditSubjects(of auditIds: [Int64], on db: any SQLDatabase) async throws -> [Int64: [UUID]] {
        let list = SQLList(auditIds.map { SQLBind($0) })
        let rows = try await db.raw("SELECT audit_id, subject_id FROM audit_subjects WHERE audit_id IN (\(list)) ORDER BY audit_id, subject_id").all()
        var subjects: [Int64: [UUID]] = [:]
        for row in rows {
            subjects[try row.decode(column: "audit_id", as: Int64.self), default: []].append(try row.uuid("subject_id"))
        }
        return subjects
    }

    /// Fills `audit_subjects` for the multi-subject revokes written before it existed (migration 6): their
    /// subjects are the comma-separated `userIds` of their details, as ``AuthService/revokeUsers`` wrote them.
    static func backfillAuditSubjects(on db: any SQLDatabase) async throws {
        let rows = try await db.raw("SELECT id, details FROM audit_events WHERE event = 'REVOKE_USERS' AND subject_id IS NULL").all()
        for row in rows {
            let details = try row.decode(column: "details", as: String.self)
            let userIds = (try? JSONDecoder().decode([String: String].self, from: Data(details.utf8)))?["userIds"] ?? ""
            // A malformed id is skipped rather than failing the upgrade: the row is still found by its actor.
            let subjects = Set(userIds.split(separator: ",").compactMap { UUID(parsing: String($0)) }.map(Column.id))
            guard !subjects.isEmpty else { continue }
            try await Self.insertAuditSubjects(subjects, of: try row.decode(column: "id", as: Int64.self), on: db)
        }
    }
}
