import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer
import TesseraStore

/// `tessera keys list | rotate | retire KID | revoke KID`: the signing keys' life cycle.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, rotate, retire or revoke the keys that sign access tokens.",
        subcommands: [List.self, Rotate.self, Retire.self, RevokeKey.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the signing keys and where each is in its life.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let listing = try await self.databaseOptions.withServices { services in
                KeyListResponse(algorithm: services.keys.algorithm.rawValue, keys: try await services.keys.list().map(KeyResponse.init))
            }
            if self.json { return try Output.printJSON(listing) }
            Output.printTable(
                header: ["KID", "ALGORITHM", "STATE", "ACTIVE FROM", "SIGNS UNTIL", "VERIFIES UNTIL"],
                rows: listing.keys.map { key -> [String] in
                    [key.kid, key.algorithm, key.state, key.activeFrom ?? "-", key.signsUntil ?? "-", key.verifiesUntil ?? "-"]
                }
            )
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a new key now; it signs once the JWKS caches have seen it (TESSERA_KEY_PUBLICATION, 10 minutes), and the old key verifies until its tokens expire."
        )
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let status = try await self.databaseOptions.withServices { services in
                try await keyChange { try await services.keys.rotate(actorId: nil, origin: .commandLine) }
            }
            let key = KeyResponse(status)
            if self.json { return try Output.printJSON(KeyEnvelope(key: key)) }
            print("published key \(key.kid); it becomes current at \(key.activeFrom ?? "-")")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a key out of service: a waiting key is withdrawn; the current key hands over to the waiting one (once it has been published long enough)."
        )
        @Argument(help: "The key's kid.") var kid: String
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let handover = try await self.databaseOptions.withServices { services in
                try await keyChange { try await services.keys.retire(kid: self.kid, actorId: nil, origin: .commandLine) }
            }
            print("retired key \(self.kid): it stops signing at \(Output.time(handover)); tokens it signed verify until they expire")
        }
    }

    struct RevokeKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "The emergency for a leaked key: every token it signed is refused at once on every instance (asks first; --yes without a terminal)."
        )
        @Argument(help: "The key's kid.") var kid: String
        @Flag(help: "Do not ask for confirmation.") var yes = false
        @Option(help: "Why, for the audit log.") var reason: String?
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            try confirm("Every token signed with key \(self.kid) stops working; its holders must sign in or refresh.", yes: self.yes)
            let entry = try await self.databaseOptions.withServices { services in
                try await keyChange { try await services.keys.revoke(kid: self.kid, actorId: nil, reason: self.reason, origin: .commandLine) }
            }
            print("revoked key \(self.kid) (log row \(entry.seq)); every token it signed is refused")
        }
    }
}

/// Runs a key change, turning a refusal into one clear line.
func keyChange<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as KeyChangeError {
        throw CommandError(message: error.description)
    }
}
