import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

extension Users {
    /// `tessera users role EMAIL admin|user`.
    struct ChangeRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "role",
            abstract: "Give an account the admin or user role: every token of it is revoked (running servers refuse them within a second).",
            discussion: "The same role again changes nothing. The last active admin cannot be made a user: make another account admin first."
        )

        @Argument(help: "The account's email.") var email: String
        @Argument(help: "admin or user.") var role: String
        @Flag(help: DryRun.help(.cut)) var dryRun = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func validate() throws {
            guard Role(rawValue: self.role) != nil else { throw ValidationError("the role must be admin or user, not '\(self.role)'") }
        }

        func run() async throws {
            let role = Role(rawValue: self.role) ?? .user
            if self.dryRun {
                let preview = try await self.databaseOptions.withServices { services in
                    try await services.auth.dryRun(.changeRole(try await services.requireUser(email: self.email).id, role))
                }
                print(DryRun.line(preview, .cut))
                return
            }
            let outcome = try await self.databaseOptions.withServices { services in
                let user = try await services.requireUser(email: self.email)
                return try await services.auth.changeRole(userId: user.id, to: role, actorId: nil, origin: .commandLine)
            }
            let email = Output.printable(outcome.user.email)
            if outcome.changed {
                print("\(email) is now \(role.rawValue) (was \(outcome.previousRole.rawValue)); every token of it is revoked")
            } else {
                print("\(email) is \(role.rawValue) already; nothing changed")
            }
        }
    }

    /// `tessera users delete EMAIL [--yes] [--dry-run]`.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an account (asks first; --yes without a terminal): every token of it is revoked and its personal data erased.",
            discussion: """
                The row stays as a tombstone with its id, so that the audit log still refers to something; the email, \
                the addresses and user agents of its sessions, and the address and origin in audit rows about it are \
                erased (docs/OPERATIONS.md, "Deleting an account"). The address can be registered again, as a new \
                account. The last active admin cannot be deleted.
                """
        )

        @Argument(help: "The account's email.") var email: String
        @Flag(help: "Do not ask for confirmation.") var yes = false
        @Flag(help: DryRun.help(.cut)) var dryRun = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            if self.dryRun {
                let preview = try await self.databaseOptions.withServices { services in
                    try await services.auth.dryRun(.deleteAccount(try await services.requireUser(email: self.email).id))
                }
                print(DryRun.line(preview, .cut))
                return
            }
            try confirm(
                "This deletes \(Output.printable(self.email)) for good: every token of it is revoked and its personal data erased.", yes: self.yes
            )
            let user = try await self.databaseOptions.withServices { services in
                let user = try await services.requireUser(email: self.email)
                try await services.auth.deleteAccount(userId: user.id, actorId: nil, origin: .commandLine)
                return user
            }
            print("deleted \(Output.printable(user.email)) (\(user.id.lowercasedString)); every token of it is revoked and its personal data erased")
        }
    }
}
