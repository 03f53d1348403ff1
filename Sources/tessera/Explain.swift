import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera explain TOKEN [--json]`: why a token is accepted or refused. Exit 0 when accepted, 1 when refused.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say why a token (access, refresh or API) is accepted or refused: which cut, when, by whom, from where.",
        discussion: "Give '-' to read the token from standard input, so that it stays out of the shell's history and the process list."
    )

    @Argument(help: "The token, or '-' to read it from standard input.") var token: String
    @Flag(help: "Print JSON for scripts.") var json = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        var token = self.token
        if token == "-" {
            guard let line = readLine(strippingNewline: true) else { throw UsageError(message: "no token on standard input") }
            token = line
        }
        // The index as a server holds it: the whole log read first.
        let explanation = try await self.databaseOptions.withServices(loadRevocationLog: true) { services in
            try await services.auth.explain(token: token)
        }
        if self.json {
            try Output.printJSON(explanation)
        } else {
            print("\(explanation.accepted ? "accepted" : "refused"): \(explanation.reason) (\(explanation.tokenType))")
            // Operators' reasons are in it: printed as text, never as terminal control sequences.
            print(Output.printable(explanation.detail))
            var rows: [[String]] = []
            if let user = explanation.userId { rows.append(["user", user.lowercasedString]) }
            if let session = explanation.sessionId { rows.append(["session", session.lowercasedString]) }
            if let kid = explanation.keyId { rows.append(["key", kid]) }
            for cut in explanation.cuts {
                let audit = cut.auditId.map { "audit #\($0) \(cut.auditEvent ?? "")" } ?? "no audit row"
                rows.append(["cut", "\(cut.kind) \(cut.cause) seq \(cut.seq), \(audit)"])
                if cut.detail != explanation.detail { rows.append(["", Output.printable(cut.detail)]) }
            }
            for row in rows { print(row[0].padding(toLength: 9, withPad: " ", startingAt: 0) + Output.printable(row[1])) }
        }
        if !explanation.accepted { throw ExitCode(1) }
    }
}
