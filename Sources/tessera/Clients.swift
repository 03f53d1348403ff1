import ArgumentParser
import Foundation
import TesseraCore
import TesseraServer
import TesseraStore

/// `tessera clients add | list | remove`: the services that may introspect, revoke, or follow the feed.
struct Clients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register, list and remove clients (services that introspect or revoke tokens, or follow the revocation feed).",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Credentials: Encodable {
        var clientId: String
        var clientSecret: String
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a client; prints its id and its secret, once.")
        @Argument(help: "A name for people.") var name: String
        @Flag(help: "It may introspect tokens (RFC 7662).") var introspect = false
        @Flag(help: "It may revoke tokens (RFC 7009).") var revoke = false
        @Flag(help: "It may follow the revocation feed.") var feed = false
        @Flag(help: "Print JSON: {\"clientId\", \"clientSecret\"}.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func validate() throws {
            guard !self.name.trimmingCharacters(in: .whitespaces).isEmpty, self.name.count <= 100 else {
                throw ValidationError("the name must be 1 to 100 characters")
            }
            guard self.introspect || self.revoke || self.feed else { throw ValidationError("give it at least one of --introspect, --revoke, --feed") }
        }

        func run() async throws {
            var permissions: Set<ClientRegistry.Permission> = []
            if self.introspect { permissions.insert(.introspect) }
            if self.revoke { permissions.insert(.revoke) }
            if self.feed { permissions.insert(.feed) }
            let (client, secret) = ClientRegistry.newClient(name: self.name, permissions: permissions, now: Date())
            try await self.databaseOptions.withServices { services in
                let audit = AuditRecord(
                    at: client.createdAt, event: .clientAdded, origin: .commandLine,
                    details: ["clientId": client.id, "name": client.name, "permissions": permissions.map { "\($0)" }.sorted().joined(separator: ",")]
                )
                try await services.store.addClient(client, audit: audit)
            }
            if self.json { return try Output.printJSON(Credentials(clientId: client.id, clientSecret: secret)) }
            print("client_id:     \(client.id)")
            print("client_secret: \(secret)")
            print("The secret is shown once and stored only as a hash: keep it now.")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered clients (never their secrets).")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let clients = try await self.databaseOptions.withServices { services in try await services.store.liveClients() }
            if self.json { return try Output.printJSON(ClientListResponse(clients: clients.map(ClientResponse.init))) }
            Output.printTable(
                header: ["CLIENT ID", "NAME", "MAY", "CREATED"],
                rows: clients.map { [$0.id, $0.name, $0.permissionNames.joined(separator: ","), Output.time($0.createdAt)] }
            )
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a client: its secret stops working (within 10 seconds on running servers).")
        @Argument(help: "The client's id.") var clientId: String
        @OptionGroup var databaseOptions: DatabaseOptions

        func run() async throws {
            let removed = try await self.databaseOptions.withServices { services in
                let now = Date()
                return try await services.store.removeClient(
                    id: self.clientId, at: now, audit: AuditRecord(at: now, event: .clientRemoved, origin: .commandLine, details: ["clientId": self.clientId])
                )
            }
            guard removed else { throw CommandError(message: "there is no client \(self.clientId)") }
            print("removed client \(self.clientId)")
        }
    }
}
