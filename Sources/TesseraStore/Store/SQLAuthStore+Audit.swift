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
            conditions.append("(actor_id = \(bind: id) OR subject_id = \(bind: id))")
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
            try await db.raw(statement).all().map { try $0.auditRecord() }
        }
    }

    /// Appends one audit row inside the caller's transaction.
    static func insertAudit(_ record: AuditRecord, on db: any SQLDatabase) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let details = String(decoding: try encoder.encode(record.details), as: UTF8.self)
        try await db.raw(
            """
            INSERT INTO audit_events (at, event, actor_id, subject_id, session_id, terminal_id, ip, user_agent, details)
            VALUES (\(bind: Column.millis(record.at)), \(bind: record.event.rawValue), \(bind: record.actorId.map(Column.id)),
                    \(bind: record.subjectId.map(Column.id)), \(bind: record.sessionId.map(Column.id)), \(bind: record.terminalId),
                    \(bind: record.ip), \(bind: record.userAgent), \(bind: details))
            """
        ).run()
    }
}
