import Foundation
import Hummingbird
import TesseraCore
import TesseraStore

/// `/api/admin/keys` and `/api/admin/clients`: the signing keys' life cycle and the registered clients, as the CLI's
/// `tessera keys` and `tessera clients list` offer them. Behind authentication and the admin role.
struct AdminKeysController {
    typealias Context = TesseraRequestContext
    let keys: KeyManager
    let clients: ClientRegistry

    struct ReasonRequest: Decodable {
        var reason: String?
    }

    func addRoutes(to admin: RouterGroup<Context>) {
        admin.get("keys", use: self.list)
        admin.post("keys/rotate", use: self.rotate)
        admin.post("keys/{kid}/retire", use: self.retire)
        admin.post("keys/{kid}/revoke", use: self.revoke)
        admin.get("clients", use: self.listClients)
    }

    @Sendable func list(request: Request, context: Context) async throws -> KeyListResponse {
        KeyListResponse(algorithm: self.keys.algorithm.rawValue, keys: try await self.keys.list().map(KeyResponse.init))
    }

    @Sendable func rotate(request: Request, context: Context) async throws -> EditedResponse<KeyEnvelope> {
        let status = try await Self.mapping { try await self.keys.rotate(actorId: try context.requireIdentity().userId, origin: request.origin(context: context)) }
        return EditedResponse(status: .created, response: KeyEnvelope(key: KeyResponse(status)))
    }

    @Sendable func retire(request: Request, context: Context) async throws -> KeyListResponse {
        let kid = try Self.kid(context)
        try await Self.mapping { try await self.keys.retire(kid: kid, actorId: try context.requireIdentity().userId, origin: request.origin(context: context)) }
        return try await self.list(request: request, context: context)
    }

    @Sendable func revoke(request: Request, context: Context) async throws -> KeyListResponse {
        let kid = try Self.kid(context)
        let body = try await request.decodeOptionalJSON(as: ReasonRequest.self, context: context)
        try await Self.mapping {
            try await self.keys.revoke(
                kid: kid, actorId: try context.requireIdentity().userId, reason: body?.reason.map { String($0.prefix(200)) }, origin: request.origin(context: context)
            )
        }
        return try await self.list(request: request, context: context)
    }

    @Sendable func listClients(request: Request, context: Context) async throws -> ClientListResponse {
        ClientListResponse(clients: try await self.clients.store.liveClients().map(ClientResponse.init))
    }

    static func kid(_ context: Context) throws -> String {
        guard let kid = context.parameters.get("kid"), !kid.isEmpty, kid.count <= 128 else {
            throw ProblemError(.notFound, code: "key_not_found", detail: "There is no such signing key.")
        }
        return kid
    }

    /// A refused key change as a problem: 404 for an unknown key, 409 for a change the key's state does not allow.
    @discardableResult
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as KeyChangeError {
            switch error {
            case .unknownKey: throw ProblemError(.notFound, code: "key_not_found", detail: error.description)
            default: throw ProblemError(.conflict, code: "key_change_refused", detail: error.description)
            }
        }
    }
}

/// `{"algorithm", "keys": [...]}`; also what `tessera keys list --json` prints.
public struct KeyListResponse: ResponseEncodable, Sendable {
    public var algorithm: String
    public var keys: [KeyResponse]

    public init(algorithm: String, keys: [KeyResponse]) {
        self.algorithm = algorithm
        self.keys = keys
    }
}

public struct KeyEnvelope: ResponseEncodable, Sendable {
    public var key: KeyResponse

    public init(key: KeyResponse) {
        self.key = key
    }
}

/// One signing key and where it is in its life.
public struct KeyResponse: Codable, Sendable {
    public var kid: String
    public var algorithm: String
    public var state: String
    public var createdAt: String?
    public var activeFrom: String?
    public var signsUntil: String?
    public var verifiesUntil: String?
    public var retiredAt: String?
    public var revokedAt: String?

    public init(_ status: KeyStatus) {
        let stored = status.key
        let known = stored.algorithm != .hs256
        self.kid = stored.kid
        self.algorithm = stored.algorithm.rawValue
        self.state = status.state.rawValue
        self.createdAt = known ? stored.createdAt.formatted(.iso8601) : nil
        self.activeFrom = known ? stored.activeFrom.formatted(.iso8601) : nil
        self.signsUntil = status.signsUntil?.formatted(.iso8601)
        self.verifiesUntil = status.verifiesUntil?.formatted(.iso8601)
        self.retiredAt = stored.retiredAt?.formatted(.iso8601)
        self.revokedAt = stored.revokedAt?.formatted(.iso8601)
    }
}

public struct ClientListResponse: ResponseEncodable, Sendable {
    public var clients: [ClientResponse]

    public init(clients: [ClientResponse]) {
        self.clients = clients
    }
}

/// A registered client, never its secret; also what `tessera clients list --json` prints.
public struct ClientResponse: Codable, Sendable {
    public var clientId: String
    public var name: String
    public var introspect: Bool
    public var revoke: Bool
    public var feed: Bool
    public var createdAt: String

    public init(_ client: OAuthClient) {
        self.clientId = client.id
        self.name = client.name
        self.introspect = client.mayIntrospect
        self.revoke = client.mayRevoke
        self.feed = client.mayFeed
        self.createdAt = client.createdAt.formatted(.iso8601)
    }
}
