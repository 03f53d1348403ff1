import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

/// `tessera unrevoke (--user EMAIL | --all) [--yes]`: undo the latest revocation, as a new log row.
struct Unrevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo an operator's latest revoke of one user, or the latest revoke-all (tokens it revoked work again); cuts made by a password change, a sign-out, deactivation or reuse detection are final."
    )

    @Option(help: "The account whose latest cut to undo (only if an operator's revoke made it).") var user: String?
    @Flag(help: "Undo the latest revoke-all.") var all = false
    @Flag(help: "Do not ask for confirmation.") var yes = false
    @Option(help: "Why, for the audit log.") var reason: String?
    @Flag(help: DryRun.help(.revive)) var dryRun = false
    @OptionGroup var databaseOptions: DatabaseOptions

    func validate() throws {
        guard (self.user != nil) != self.all else { throw ValidationError("name exactly one of --user EMAIL or --all") }
    }

    func run() async throws {
        let what = self.all ? "the latest revoke-all" : "the latest revocation of \(self.user ?? "")"
        if self.dryRun {
            // Refused exactly where the un-revoke would be, with the same message, but nothing is recorded.
            let preview = try await self.databaseOptions.withServices { services in
                try await services.auth.dryRun(.unrevoke(try await self.target(services)))
            }
            print(DryRun.line(preview, .revive))
            return
        }
        try confirm("This undoes \(what): tokens it revoked work again.", yes: self.yes)
        let entry = try await self.databaseOptions.withServices { services in
            try await services.auth.unrevoke(try await self.target(services), actorId: nil, reason: self.reason, origin: .commandLine)
        }
        switch entry.kind {
        case .global(let epoch): print("undid \(what); the accepted epoch is \(epoch) again")
        default: print("undid \(what)")
        }
    }

    private func target(_ services: TesseraServices) async throws -> UnrevokeRequest.Target {
        guard let email = self.user else { return .global }
        return .subject(try await services.requireUser(email: email).id)
    }
}
