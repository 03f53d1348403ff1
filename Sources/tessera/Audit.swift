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
        let page = try await self.databaseOptions.withServices { services in
            var query = AuditQuery(limit: self.limit)
            if let email = self.user { query.userId = try await services.requireUser(email: email).id }
            query.event = self.event.flatMap(AuditEventName.init(rawValue:))
            query.since = try self.since.map { try Date($0, strategy: .iso8601) }
            query.until = try self.until.map { try Date($0, strategy: .iso8601) }
            return try await services.auth.auditLog(query, cursor: nil)
        }
        let rows = page.events.map(AuditEventResponse.init)
        if self.json {
            try Output.printJSON(["events": rows])
        } else {
            Output.printTable(
                header: ["AT", "EVENT", "ACTOR", "SUBJECT", "IP", "DETAILS"],
                rows: rows.map {
                    [
                        $0.at, $0.event, $0.actorId.map { String($0.prefix(8)) } ?? "-", $0.subjectId.map { String($0.prefix(8)) } ?? "-", $0.ip ?? "-",
                        $0.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                    ]
                }
            )
        }
    }
}
