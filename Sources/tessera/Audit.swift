import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera audit [--user EMAIL] [--event NAME] [--since ISO8601] [--until ISO8601] [--limit N] [--json]`.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit log, newest first.")

    @Option(help: "Only rows where this account is the actor or the subject.") var user: String?
    @Option(help: "Only this event (\(AuditEventName.allCases.map(\.rawValue).joined(separator: ", "))).") var event: String?
    @Option(help: "Only rows at or after this time (ISO 8601).") var since: String?
    @Option(help: "Only rows before this time (ISO 8601).") var until: String?
    @Option(help: "At most this many rows (1-500).") var limit = 50
    @Flag(help: "Print JSON for scripts.") var json = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func validate() throws {
        guard (1...500).contains(self.limit) else { throw ValidationError("--limit must be from 1 to 500") }
        if let event, AuditEventName(rawValue: event) == nil {
            let names = AuditEventName.allCases.map(\.rawValue)
            let hint = Suggestion.closest(to: event.uppercased(), among: names).map { "did you mean \($0)? " } ?? ""
            throw ValidationError("--event '\(event)' is not an audit event; \(hint)the events are: \(names.joined(separator: ", "))")
        }
        for (name, value) in [("--since", self.since), ("--until", self.until)] {
            if let value, (try? Date(value, strategy: .iso8601)) == nil { throw ValidationError("\(name) must be ISO 8601, such as 2026-11-23T10:00:00Z") }
        }
    }

    func run() async throws {
        let (events, emails) = try await self.databaseOptions.withServices { services in
            var query = AuditQuery(limit: self.limit)
            if let email = self.user { query.userId = try await services.requireUser(email: email).id }
            query.event = self.event.flatMap(AuditEventName.init(rawValue:))
            query.since = try self.since.map { try Date($0, strategy: .iso8601) }
            query.until = try self.until.map { try Date($0, strategy: .iso8601) }
            let events = try await services.auth.auditLog(query, cursor: nil).events
            // Every actor and subject of the page in one read, as the console does.
            let people = Set(events.flatMap { [$0.actorId, $0.subjectId].compactMap { $0 } + $0.subjectIds })
            return (events, try await services.auth.emails(of: Array(people)))
        }
        if self.json {
            try Output.printJSON(["events": events.map { AuditEventOutput($0, emails: emails) }])
        } else {
            // An account that is gone is shown by its whole id, as the API writes it.
            func person(_ id: UUID) -> String { emails[id] ?? id.lowercasedString }
            Output.printTable(
                header: ["AT", "EVENT", "ACTOR", "SUBJECT", "IP", "DETAILS"],
                rows: events.map { record in
                    let subjects = record.subjectId.map { [$0] } ?? record.subjectIds
                    var details = record.details
                    // SUBJECT names a revoke's users already; their ids again would only widen the table.
                    if record.event == .revokeUsers && !subjects.isEmpty { details["userIds"] = nil }
                    return [
                        AuditEventResponse(record).at, record.event.rawValue, record.actorId.map(person) ?? "-",
                        subjects.isEmpty ? "-" : subjects.map(person).joined(separator: ","), record.ip ?? "-",
                        details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                    ]
                }
            )
        }
    }
}

/// An audit row as the API writes it, with the emails of its actor and subjects beside their ids (`null` when
/// there is none or the account is gone); a row about several accounts lists them in `subjects` (`id`, and
/// `email` while the account exists).
private struct AuditEventOutput: Encodable {
    let event: AuditEventResponse
    let actorEmail: String?
    let subjectEmail: String?
    let subjects: [Subject]

    struct Subject: Encodable {
        let id: String
        let email: String?
    }

    enum CodingKeys: String, CodingKey { case actorEmail, subjectEmail, subjects }

    init(_ record: AuditRecord, emails: [UUID: String]) {
        self.event = AuditEventResponse(record)
        self.actorEmail = record.actorId.flatMap { emails[$0] }
        self.subjectEmail = record.subjectId.flatMap { emails[$0] }
        self.subjects = record.subjectIds.map { Subject(id: $0.lowercasedString, email: emails[$0]) }
    }

    func encode(to encoder: any Encoder) throws {
        try self.event.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.actorEmail, forKey: .actorEmail)
        try container.encode(self.subjectEmail, forKey: .subjectEmail)
        if !self.subjects.isEmpty { try container.encode(self.subjects, forKey: .subjects) }
    }
}
