import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TesseraCore

/// `/api/tokens`: the caller's personal API tokens. Behind ``AuthenticationMiddleware``.
struct APITokensController {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    struct CreateRequest: Decodable {
        var name: String
        var expiresInDays: Int?
    }

    func addRoutes(to protected: RouterGroup<Context>) {
        protected.post("tokens", use: self.create)
        protected.get("tokens", use: self.list)
        protected.delete("tokens/{id}", use: self.revoke)
    }

    @Sendable func create(request: Request, context: Context) async throws -> EditedResponse<CreatedAPITokenResponse> {
        let caller = try context.requireIdentity()
        // A token that leaked must not be able to mint more: new tokens need a signed-in session.
        guard !context.viaAPIToken else {
            throw ProblemError(.forbidden, code: "forbidden", detail: "An API token cannot create API tokens; sign in to create one.")
        }
        let body = try await request.decodeJSON(as: CreateRequest.self, context: context)
        let made = try await self.auth.createAPIToken(
            userId: caller.userId, name: body.name, days: body.expiresInDays, actorId: caller.userId, origin: request.origin(context: context)
        )
        return EditedResponse(status: .created, headers: [.cacheControl: "no-store"], response: CreatedAPITokenResponse(token: made.token, made.record))
    }

    @Sendable func list(request: Request, context: Context) async throws -> APITokenListResponse {
        let caller = try context.requireIdentity()
        let tokens = try await self.auth.apiTokens(userId: caller.userId)
        return APITokenListResponse(tokens: tokens.map { APITokenResponse($0.record, active: $0.active) })
    }

    @Sendable func revoke(request: Request, context: Context) async throws -> HTTPResponse.Status {
        let caller = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap({ UUID(parsing: $0) }) else { throw AuthError.apiTokenNotFound }
        try await self.auth.revokeAPIToken(id: id, owner: caller.userId, actorId: caller.userId, origin: request.origin(context: context))
        return .noContent
    }
}

/// One API token as listed (never its secret): by the API and by `tessera tokens list --json`.
public struct APITokenResponse: Encodable, Sendable {
    public var id: String
    public var name: String
    public var createdAt: String
    public var lastUsedAt: String?
    public var expiresAt: String
    public var invalidatedAt: String?
    /// Whether it is accepted now (not expired, not revoked on its own nor by a cut of its user or of everyone).
    public var active: Bool

    public init(_ record: APITokenRecord, active: Bool) {
        self.id = record.id.lowercasedString
        self.name = record.name
        self.createdAt = iso8601(record.createdAt)
        self.lastUsedAt = record.lastUsedAt.map(iso8601)
        self.expiresAt = iso8601(record.expiresAt)
        self.invalidatedAt = record.invalidatedAt.map(iso8601)
        self.active = active
    }

    enum CodingKeys: String, CodingKey { case id, name, createdAt, lastUsedAt, expiresAt, invalidatedAt, active }

    // `null`s written out: a client sees every field of the contract.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.lastUsedAt, forKey: .lastUsedAt)
        try container.encode(self.expiresAt, forKey: .expiresAt)
        try container.encode(self.invalidatedAt, forKey: .invalidatedAt)
        try container.encode(self.active, forKey: .active)
    }
}

struct APITokenListResponse: ResponseEncodable {
    var tokens: [APITokenResponse]
}

/// The answer of a creation: the secret, shown this once (the API's answer and `tessera tokens create --json`).
public struct CreatedAPITokenResponse: ResponseEncodable {
    public var token: String
    public var id: String
    public var name: String
    public var createdAt: String
    public var expiresAt: String

    public init(token: String, _ record: APITokenRecord) {
        self.token = token
        self.id = record.id.lowercasedString
        self.name = record.name
        self.createdAt = iso8601(record.createdAt)
        self.expiresAt = iso8601(record.expiresAt)
    }
}

/// Writes API tokens' last-use times every few seconds and at shutdown, so that a request never writes.
struct APITokenUseFlusher: Service {
    let auth: AuthService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            do {
                try await self.auth.flushAPITokenUse()
            } catch {
                self.logger.warning("API token last-use times could not be written; kept for the next try", metadata: ["error": "\(error)"])
            }
        }
    }
}
