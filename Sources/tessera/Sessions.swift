import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera sessions EMAIL [--json]`: one account's live sessions.
struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List an account's live sessions (devices).")

    @Argument(help: "The account's email.") var email: String
    @Flag(help: "Print JSON for scripts.") var json = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        let sessions = try await self.databaseOptions.withServices { services in
            let user = try await services.requireUser(email: self.email)
            return try await services.auth.store.liveSessions(userId: user.id, now: Date())
        }
        let rows = sessions.map { SessionResponse($0, current: false) }
        if self.json {
            try Output.printJSON(["sessions": rows])
        } else {
            Output.printTable(
                header: ["DEVICE", "IP", "LAST SEEN", "CREATED", "USER AGENT", "ID"],
                rows: rows.map { [$0.deviceName ?? "-", $0.ip ?? "-", $0.lastSeenAt, $0.createdAt, String(($0.userAgent ?? "-").prefix(40)), $0.id] }
            )
        }
    }
}
