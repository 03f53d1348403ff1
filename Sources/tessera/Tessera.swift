import ArgumentParser
import Foundation
import Logging
import TesseraCore
import TesseraServer
import TesseraStore

#if canImport(Glibc)
import Glibc
#endif

/// The `tessera` command: exit 0 on success, 1 on a user error (one line on stderr), 2 on bad usage.
@main
struct Tessera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Self-hosted sign-in and sessions whose tokens can be taken back at once.",
        subcommands: [Serve.self, Migrate.self, Copy.self, Backup.self, Users.self, Sessions.self, Revoke.self, RevokeAll.self, Unrevoke.self, Audit.self, Explain.self, Keys.self, Clients.self, Tokens.self]
    )

    static func main() async {
        let command: any ParsableCommand
        do {
            command = try Self.parseAsRoot()
        } catch {
            var message = Self.fullMessage(for: error)
            if Self.exitCode(for: error) == .success {
                print(message)
                Foundation.exit(0)
            }
            if let hint = Self.suggestion(for: Array(CommandLine.arguments.dropFirst()), message: message) { message += "\n" + hint }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            Foundation.exit(2)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
            Foundation.exit(0)
        } catch let code as ExitCode {
            // A command that printed its answer already and says only yes or no with its status (`explain`).
            Foundation.exit(code.rawValue)
        } catch let error as UsageError {
            CommandLine.fail("tessera: \(error.message)", status: 2)
        } catch {
            // `--help` and ArgumentParser's own usage errors surface here, from the parsed command's run.
            switch Self.exitCode(for: error) {
            case .success:
                print(Self.fullMessage(for: error))
                Foundation.exit(0)
            case .validationFailure:
                CommandLine.fail(Self.fullMessage(for: error), status: 2)
            default:
                CommandLine.fail("tessera: \(CommandLine.describe(error))", status: 1)
            }
        }
    }
}

extension Tessera {
    /// "Did you mean …?" for a mistyped subcommand (`tessera user list`, `revoke-al`) or option (`--yess`).
    static func suggestion(for arguments: [String], message: String) -> String? {
        var command: any ParsableCommand.Type = Tessera.self
        var path: [String] = []
        for argument in arguments where !argument.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { break }
            guard let next = subcommands.first(where: { $0._commandName == argument }) else {
                guard let guess = Suggestion.closest(to: argument, among: subcommands.map { $0._commandName }) else { return nil }
                return "did you mean 'tessera \((path + [guess]).joined(separator: " "))'?"
            }
            command = next
            path.append(argument)
        }
        guard !message.contains("Did you mean"), let range = message.range(of: #"Unknown option '(-[^']+)'"#, options: .regularExpression) else {
            return nil
        }
        let unknown = String(message[range].dropFirst("Unknown option '".count).dropLast())
        let help = Tessera.helpMessage(for: command)
        let options = Set(help.split(whereSeparator: { !($0.isLetter || $0 == "-" || $0.isNumber) }).map(String.init).filter { $0.hasPrefix("--") })
        guard let guess = Suggestion.closest(to: unknown, among: options.sorted()) else { return nil }
        return "did you mean '\(guess)'?"
    }
}

/// Bad usage found while running (for example a destructive command without `--yes` and no terminal): exit 2.
struct UsageError: Error {
    var message: String
}

/// A user error with a message meant for people: exit 1.
struct CommandError: Error {
    var message: String
}

extension CommandLine {
    static func fail(_ line: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        Foundation.exit(status)
    }

    /// One clear line for an error, with no secret in it.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as CommandError: return error.message
        case let error as ConfigurationError: return error.description
        case let error as DatabaseURLError: return error.description
        case let error as MigrationError: return error.description
        case let error as StoreUnavailable: return error.description
        case let error as AuthError:
            switch error {
            case .emailTaken: return "an account with this email exists"
            case .invalidEmail: return "this is not an email address"
            case .weakPassword(let why): return "the password is too weak: \(why)"
            case .userNotFound: return "no such user"
            case .apiTokenNotFound: return "no such API token (or it was revoked already)"
            case .nothingToUndo: return "there is no revocation left to undo"
            case .cutIsFinal(let cause): return "the latest revocation was made by \(cause) and cannot be undone"
            case .accountInactiveCannotBeUnrevoked: return "the account is deactivated; activate it before un-revoking"
            case .lastAdmin: return "this is the last active admin; make another account admin first (tessera users role EMAIL admin)"
            case .invalidArgument(let why): return why
            default: return "\(error)"
            }
        default: return "\(error)"
        }
    }
}

/// `--database`, shared by every command; `DATABASE_URL` when absent.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "sqlite:///abs/path, sqlite://rel/path, a bare path, or postgres://user:pass@host:port/db (default: DATABASE_URL or sqlite://tessera.sqlite)")
    var database: String?

    /// The configuration from the environment with this flag applied.
    func configuration() throws -> Configuration {
        var configuration = try Configuration.fromEnvironment()
        if let database { configuration.database = try DatabaseURL(parsing: database) }
        return configuration
    }

    /// Runs a one-shot command with the shared services, logging only errors so that output stays readable, and
    /// closes the database afterwards whatever happens. Commands check no tokens, so the log is not read into an index.
    /// - Parameter loadRevocationLog: read the whole log into the index first (a command that judges tokens).
    func withServices<T>(loadRevocationLog: Bool = false, _ body: (TesseraServices) async throws -> T) async throws -> T {
        let configuration = try self.configuration()
        var logger = Logger(label: "tessera.cli")
        logger.logLevel = .error
        let services = try await buildServices(configuration: configuration, logger: logger, loadRevocationLog: loadRevocationLog, createDatabase: false)
        do {
            let result = try await body(services)
            await services.close()
            return result
        } catch {
            await services.close()
            throw error
        }
    }
}

/// Asks on a terminal, or requires `--yes` when there is none.
func confirm(_ question: String, yes: Bool) throws {
    if yes { return }
    guard isatty(STDIN_FILENO) == 1 else {
        throw UsageError(message: "refusing without confirmation: no terminal to ask on; pass --yes")
    }
    FileHandle.standardError.write(Data("\(question) Type 'yes' to go on: ".utf8))
    guard readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
        throw CommandError(message: "cancelled; nothing was changed")
    }
}
