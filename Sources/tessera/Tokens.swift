import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera tokens create|list|revoke`: personal API tokens, for an operator or a script.
struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Personal API tokens (tsr_…): create one for an account, list them, revoke one.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    /// `tessera tokens create EMAIL --name NAME [--days N] [--json]`: prints the secret once.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token for an account; its secret is printed once.")

        @Argument(help: "The account's email.") var email: String
        @Option(help: "What the token is for (shown in lists).") var name: String
        @Option(help: "Days until it expires, 1 to 365 (default: TOKEN_EXPIRY_DAYS, 10).") var days: Int?
        @Flag(help: "Print JSON for scripts: {\"token\", \"id\", \"name\", \"createdAt\", \"expiresAt\"}.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let made = try await self.databaseOptions.withServices { services in
                let user = try await services.requireUser(email: self.email)
                return try await services.auth.createAPIToken(userId: user.id, name: self.name, days: self.days, actorId: nil, origin: .commandLine)
            }
            let output = CreatedAPITokenResponse(token: made.token, made.record)
            if self.json {
                try Output.printJSON(output)
            } else {
                print(made.token)
                FileHandle.standardError.write(Data("API token \(output.id) (\(output.name)) expires \(output.expiresAt); the secret above is shown only now.\n".utf8))
            }
        }
    }

    /// `tessera tokens list EMAIL [--json]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an account's API tokens (never their secrets).")

        @Argument(help: "The account's email.") var email: String
        @Flag(help: "Print JSON for scripts.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            // The index as a server holds it: whether each token is still accepted.
            let tokens = try await self.databaseOptions.withServices(loadRevocationLog: true) { services in
                let user = try await services.requireUser(email: self.email)
                return try await services.auth.apiTokens(userId: user.id)
            }
            let rows = tokens.map { APITokenResponse($0.record, active: $0.active) }
            if self.json {
                try Output.printJSON(["tokens": rows])
            } else {
                Output.printTable(
                    header: ["ID", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATE"],
                    rows: rows.map { [$0.id, $0.name, $0.createdAt, $0.lastUsedAt ?? "-", $0.expiresAt, $0.active ? "active" : ($0.invalidatedAt != nil ? "revoked" : "refused")] }
                )
            }
        }
    }

    /// `tessera tokens revoke ID`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke one API token by its id: every instance refuses it within a second.")

        @Argument(help: "The token's id (from `tokens list`).") var id: String
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            guard let id = UUID(parsing: self.id) else { throw UsageError(message: "'\(self.id)' is not a token id (a UUID, from `tessera tokens list`)") }
            try await self.databaseOptions.withServices { services in
                try await services.auth.revokeAPIToken(id: id, owner: nil, actorId: nil, origin: .commandLine)
            }
            print("revoked API token \(id.lowercasedString)")
        }
    }
}
