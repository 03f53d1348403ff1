import Foundation
import SQLKit
import TesseraCore

/// Conversions between the schema's column types (ms since 1970, lower-case UUID text) and Core's values.
enum Column {
    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(millis) / 1000) }
    static func id(_ uuid: UUID) -> String { uuid.lowercasedString }
}

/// A row the store cannot read: the database holds something this version does not understand.
struct CorruptRow: Error, CustomStringConvertible {
    var description: String
}

extension SQLRow {
    func uuid(_ column: String) throws -> UUID {
        let text = try self.decode(column: column, as: String.self)
        guard let uuid = UUID(parsing: text) else { throw CorruptRow(description: "\(column) is not a UUID") }
        return uuid
    }

    func optionalUUID(_ column: String) throws -> UUID? {
        guard let text = try self.decode(column: column, as: String?.self) else { return nil }
        return UUID(parsing: text)
    }

    func date(_ column: String) throws -> Date {
        Column.date(try self.decode(column: column, as: Int64.self))
    }

    func optionalDate(_ column: String) throws -> Date? {
        try self.decode(column: column, as: Int64?.self).map(Column.date)
    }

    /// Reads `id, email, role, is_active, created_at` (with an optional prefix for joined columns).
    func user(prefix: String = "") throws -> User {
        let roleName = try self.decode(column: prefix + "role", as: String.self)
        guard let role = Role(rawValue: roleName) else { throw CorruptRow(description: "unknown role \(roleName)") }
        return User(
            id: try self.uuid(prefix + "id"),
            email: try self.decode(column: prefix + "email", as: String.self),
            role: role,
            isActive: try self.decode(column: prefix + "is_active", as: Int.self) != 0,
            createdAt: try self.date(prefix + "created_at")
        )
    }

    /// Reads a `sessions` row.
    func session() throws -> Session {
        Session(
            id: try self.uuid("id"),
            userId: try self.uuid("user_id"),
            createdAt: try self.date("created_at"),
            lastSeenAt: try self.date("last_seen_at"),
            expiresAt: try self.date("expires_at"),
            ip: try self.decode(column: "ip", as: String?.self),
            userAgent: try self.decode(column: "user_agent", as: String?.self),
            deviceName: try self.decode(column: "device_name", as: String?.self),
            terminalId: try self.decode(column: "terminal_id", as: String?.self),
            tokenVersion: try self.decode(column: "token_version", as: Int64.self),
            epoch: try self.decode(column: "epoch", as: Int64.self)
        )
    }

    /// Reads an `audit_events` row.
    func auditRecord() throws -> AuditRecord {
        let eventName = try self.decode(column: "event", as: String.self)
        guard let event = AuditEventName(rawValue: eventName) else { throw CorruptRow(description: "unknown audit event \(eventName)") }
        let detailsJSON = try self.decode(column: "details", as: String.self)
        let details = (try? JSONDecoder().decode([String: String].self, from: Data(detailsJSON.utf8))) ?? [:]
        var record = AuditRecord(
            id: try self.decode(column: "id", as: Int64.self),
            at: try self.date("at"),
            event: event,
            actorId: try self.optionalUUID("actor_id"),
            subjectId: try self.optionalUUID("subject_id"),
            sessionId: try self.optionalUUID("session_id"),
            details: details
        )
        record.terminalId = try self.decode(column: "terminal_id", as: String?.self)
        record.ip = try self.decode(column: "ip", as: String?.self)
        record.userAgent = try self.decode(column: "user_agent", as: String?.self)
        return record
    }
}
