import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera revoke --user EMAIL …`: every token of these users stops working, here and on every running server.
struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke every token of one or more users (enforced by running servers within a second).")

    @Option(name: .customLong("user"), help: "An account's email; repeat for several.") var users: [String] = []
    @Option(help: "Why, for the audit log.") var reason: String?
    @Flag(help: DryRun.help(.cut)) var dryRun = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func validate() throws {
        guard !self.users.isEmpty else { throw ValidationError("name at least one --user EMAIL") }
    }

    func run() async throws {
        if self.dryRun {
            let preview = try await self.databaseOptions.withServices { services in
                try await services.auth.dryRun(.revokeUsers(try await self.userIds(services)))
            }
            print(DryRun.line(preview, .cut))
            return
        }
        let count = try await self.databaseOptions.withServices { services in
            try await services.auth.revokeUsers(try await self.userIds(services), actorId: nil, reason: self.reason, origin: .commandLine)
        }
        print("revoked every token of \(count) user\(count == 1 ? "" : "s"): \(self.users.joined(separator: ", "))")
    }

    /// The named accounts; a user error for the first email with none, before anything is revoked.
    private func userIds(_ services: TesseraServices) async throws -> [UUID] {
        var ids: [UUID] = []
        for email in self.users {
            guard let user = try await services.auth.user(email: email) else {
                throw CommandError(message: "no account with the email \(email); nothing was revoked")
            }
            ids.append(user.id)
        }
        return ids
    }
}

/// `tessera revoke-all`: every token of every user issued before now stops working.
struct RevokeAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-all",
        abstract: "Revoke every token of every user issued before now (asks first; --yes without a terminal)."
    )

    @Flag(help: "Do not ask for confirmation.") var yes = false
    @Option(help: "Why, for the audit log.") var reason: String?
    @Flag(help: DryRun.help(.cut)) var dryRun = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func run() async throws {
        if self.dryRun {
            let preview = try await self.databaseOptions.withServices { services in try await services.auth.dryRun(.revokeAll) }
            print(DryRun.line(preview, .cut))
            return
        }
        try confirm("This signs out every user on every device.", yes: self.yes)
        let epoch = try await self.databaseOptions.withServices { services in
            try await services.auth.revokeAll(actorId: nil, reason: self.reason, origin: .commandLine)
        }
        print("revoked every token issued before now; the global epoch is \(epoch)")
    }
}
