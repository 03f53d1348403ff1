import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer

#if canImport(Glibc)
import Glibc
#endif

/// `tessera users …`: accounts.
struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage accounts.", subcommands: [Add.self, List.self, Deactivate.self, Activate.self, ChangeRole.self, Delete.self]
    )

    /// `tessera users add EMAIL [--admin] [--password-stdin]`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account; the password is asked on the terminal without echo, or read from stdin."
        )

        @Argument(help: "The account's email.") var email: String
        @Flag(help: "Give the account the admin role.") var admin = false
        @Flag(help: "Read the password from the first line of standard input.") var passwordStdin = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let password = try self.readPassword()
            let user = try await self.databaseOptions.withServices { services in
                try await services.auth.register(email: self.email, password: password, role: self.admin ? .admin : .user, origin: .commandLine)
            }
            print("created \(user.role.rawValue) \(Output.printable(user.email)) (\(user.id.lowercasedString))")
        }

        func readPassword() throws -> String {
            if self.passwordStdin {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    throw CommandError(message: "no password on standard input")
                }
                return line
            }
            guard isatty(STDIN_FILENO) == 1 else {
                throw UsageError(message: "no terminal to ask for the password on; pass --password-stdin")
            }
            let first = Terminal.readSecret(prompt: "Password for \(self.email): ")
            let second = Terminal.readSecret(prompt: "Again: ")
            guard first == second else { throw CommandError(message: "the two passwords differ; nothing was created") }
            return first
        }
    }
}

extension Users {
    /// `tessera users list [--search TEXT] [--json]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts by email.")

        @Option(help: "Only accounts whose email contains this text.") var search: String?
        @Flag(help: "Print JSON for scripts.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let users = try await self.databaseOptions.withServices { services in
                var all: [User] = []
                var cursor: String?
                repeat {
                    let page = try await services.auth.listUsers(search: self.search, cursor: cursor, limit: 200)
                    all += page.users
                    cursor = page.nextCursor
                } while cursor != nil
                return all
            }
            if self.json {
                try Output.printJSON(["users": users.map(UserResponse.init)])
            } else {
                Output.printTable(
                    header: ["EMAIL", "ROLE", "ACTIVE", "CREATED", "ID"],
                    rows: users.map { [$0.email, $0.role.rawValue, $0.isActive ? "yes" : "no", Output.time($0.createdAt), $0.id.lowercasedString] }
                )
            }
        }
    }

    /// `tessera users deactivate EMAIL`.
    struct Deactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deactivate an account: every token of it is revoked (running servers refuse them within a second) and sign-in is refused."
        )

        @Argument(help: "The account's email.") var email: String
        @Option(help: "Why, for the audit log.") var reason: String?
        @Flag(help: DryRun.help(.cut)) var dryRun = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            if self.dryRun {
                // The account stays active: only counted.
                let preview = try await self.databaseOptions.withServices { services in
                    try await services.auth.dryRun(.deactivate(try await services.requireUser(email: self.email).id))
                }
                print(DryRun.line(preview, .cut))
                return
            }
            let user = try await self.databaseOptions.withServices { services in
                let user = try await services.requireUser(email: self.email)
                return try await services.auth.deactivate(userId: user.id, actorId: nil, reason: self.reason, origin: .commandLine)
            }
            print("deactivated \(Output.printable(user.email)); every token of it is revoked")
        }
    }

    /// `tessera users activate EMAIL`.
    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Activate an account again (tokens revoked before stay revoked).")

        @Argument(help: "The account's email.") var email: String
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let user = try await self.databaseOptions.withServices { services in
                let user = try await services.requireUser(email: self.email)
                return try await services.auth.activate(userId: user.id, actorId: nil, origin: .commandLine)
            }
            print("activated \(Output.printable(user.email))")
        }
    }
}

/// Reading a secret from the terminal with echo off.
enum Terminal {
    static func readSecret(prompt: String) -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        tcgetattr(STDIN_FILENO, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true) ?? ""
    }
}
