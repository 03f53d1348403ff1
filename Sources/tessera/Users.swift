import ArgumentParser
import Foundation
import TesseraCore

#if canImport(Glibc)
import Glibc
#endif

/// `tessera users …`: accounts.
struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage accounts.", subcommands: [Add.self])

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
            print("created \(user.role.rawValue) \(user.email) (\(user.id.uuidString.lowercased()))")
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
