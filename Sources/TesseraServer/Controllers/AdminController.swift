import Foundation
import Hummingbird
import TesseraCore

/// `/api/admin`: accounts, operator revocations and the audit log. Behind authentication and the admin role.
struct AdminController {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    /// Each revoking route's body may say `"dryRun": true`: then it answers what it would cut (or revive) and writes
    /// nothing (``AuthService/dryRun(_:)``).
    struct RevokeRequest: Decodable {
        var userIds: [String]
        var reason: String?
        var dryRun: Bool?
    }

    struct ReasonRequest: Decodable {
        var reason: String?
        var dryRun: Bool?
    }

    struct UnrevokeBody: Decodable {
        var userId: String?
        var all: Bool?
        var reason: String?
        var dryRun: Bool?
    }

    struct PasswordResetRequest: Decodable {
        var newPassword: String
    }

    /// `{"role": "admin" | "user", "dryRun"?}`; the role is checked by the handler, so that an unknown one is a 400
    /// `invalid_request` naming the roles rather than a decoding error.
    struct RoleRequest: Decodable {
        var role: String
        var dryRun: Bool?
    }

    struct DryRunRequest: Decodable {
        var dryRun: Bool?
    }

    func addRoutes(to admin: RouterGroup<Context>) {
        admin.get("users", use: self.listUsers)
        admin.post("users/{id}/deactivate", use: self.deactivate)
        admin.post("users/{id}/activate", use: self.activate)
        admin.post("users/{id}/password", use: self.resetPassword)
        admin.post("users/{id}/role", use: self.changeRole)
        admin.delete("users/{id}", use: self.deleteUser)
        admin.post("revoke", use: self.revoke)
        admin.post("revoke-all", use: self.revokeAll)
        admin.post("unrevoke", use: self.unrevoke)
        admin.get("audit", use: self.audit)
    }

    @Sendable func listUsers(request: Request, context: Context) async throws -> UserListResponse {
        let query = request.uri.queryParameters
        let page = try await self.auth.listUsers(
            search: query.get("q"), cursor: query.get("cursor"), limit: try Self.limit(query.get("limit"), default: 50)
        )
        return UserListResponse(users: page.users.map(UserResponse.init), nextCursor: page.nextCursor)
    }

    @Sendable func deactivate(request: Request, context: Context) async throws -> DryRunOr<UserEnvelope> {
        let body = try await request.decodeOptionalJSON(as: ReasonRequest.self, context: context)
        let userId = try Self.userId(context)
        if body?.dryRun == true { return .dryRun(try await self.auth.dryRun(.deactivate(userId))) }
        let user = try await self.auth.deactivate(
            userId: userId, actorId: try context.requireIdentity().userId, reason: body?.reason, origin: request.origin(context: context)
        )
        return .done(UserEnvelope(user: UserResponse(user)))
    }

    @Sendable func activate(request: Request, context: Context) async throws -> UserEnvelope {
        let user = try await self.auth.activate(
            userId: try Self.userId(context), actorId: try context.requireIdentity().userId, origin: request.origin(context: context)
        )
        return UserEnvelope(user: UserResponse(user))
    }

    @Sendable func resetPassword(request: Request, context: Context) async throws -> UserEnvelope {
        let body = try await request.decodeJSON(as: PasswordResetRequest.self, context: context)
        let user = try await self.auth.resetPassword(
            userId: try Self.userId(context), newPassword: body.newPassword, actorId: try context.requireIdentity().userId,
            origin: request.origin(context: context)
        )
        return UserEnvelope(user: UserResponse(user))
    }

    /// 200 with the account whether or not its role changed: the same role again revokes nothing (see
    /// ``AuthService/changeRole(userId:to:actorId:origin:)``).
    @Sendable func changeRole(request: Request, context: Context) async throws -> DryRunOr<UserEnvelope> {
        let body = try await request.decodeJSON(as: RoleRequest.self, context: context)
        let userId = try Self.userId(context)
        guard let role = Role(rawValue: body.role) else { throw AuthError.invalidArgument("role must be \"admin\" or \"user\"") }
        if body.dryRun == true { return .dryRun(try await self.auth.dryRun(.changeRole(userId, role))) }
        let outcome = try await self.auth.changeRole(
            userId: userId, to: role, actorId: try context.requireIdentity().userId, origin: request.origin(context: context)
        )
        return .done(UserEnvelope(user: UserResponse(outcome.user)))
    }

    /// 204 once deleted; the body may be empty, or `{"dryRun": true}`.
    @Sendable func deleteUser(request: Request, context: Context) async throws -> DryRunOr<HTTPResponse.Status> {
        let body = try await request.decodeOptionalJSON(as: DryRunRequest.self, context: context)
        let userId = try Self.userId(context)
        if body?.dryRun == true { return .dryRun(try await self.auth.dryRun(.deleteAccount(userId))) }
        try await self.auth.deleteAccount(userId: userId, actorId: try context.requireIdentity().userId, origin: request.origin(context: context))
        return .done(.noContent)
    }

    @Sendable func revoke(request: Request, context: Context) async throws -> DryRunOr<RevokedResponse> {
        let body = try await request.decodeJSON(as: RevokeRequest.self, context: context)
        guard !body.userIds.isEmpty, body.userIds.count <= 1000 else {
            throw AuthError.invalidArgument("userIds must list from 1 to 1000 user ids")
        }
        let ids = try body.userIds.map { text in
            guard let id = UUID(uuidString: text) else { throw AuthError.invalidArgument("'\(text.prefix(64))' is not a user id") }
            return id
        }
        if body.dryRun == true { return .dryRun(try await self.auth.dryRun(.revokeUsers(ids))) }
        let count = try await self.auth.revokeUsers(
            ids, actorId: try context.requireIdentity().userId, reason: body.reason, origin: request.origin(context: context)
        )
        return .done(RevokedResponse(revoked: count))
    }

    @Sendable func revokeAll(request: Request, context: Context) async throws -> DryRunOr<EpochResponse> {
        let body = try await request.decodeOptionalJSON(as: ReasonRequest.self, context: context)
        if body?.dryRun == true { return .dryRun(try await self.auth.dryRun(.revokeAll)) }
        let epoch = try await self.auth.revokeAll(
            actorId: try context.requireIdentity().userId, reason: body?.reason, origin: request.origin(context: context)
        )
        return .done(EpochResponse(epoch: epoch))
    }

    @Sendable func unrevoke(request: Request, context: Context) async throws -> DryRunOr<UnrevokedResponse> {
        let body = try await request.decodeJSON(as: UnrevokeBody.self, context: context)
        let target: UnrevokeRequest.Target
        switch (body.userId, body.all) {
        case (let userId?, nil), (let userId?, false?):
            guard let id = UUID(uuidString: userId) else { throw AuthError.invalidArgument("userId is not a user id") }
            target = .subject(id)
        case (nil, true?):
            target = .global
        default:
            throw AuthError.invalidArgument("send either {\"userId\": ...} or {\"all\": true}")
        }
        if body.dryRun == true { return .dryRun(try await self.auth.dryRun(.unrevoke(target))) }
        let entry = try await self.auth.unrevoke(
            target, actorId: try context.requireIdentity().userId, reason: body.reason, origin: request.origin(context: context)
        )
        return .done(UnrevokedResponse(entry))
    }

    @Sendable func audit(request: Request, context: Context) async throws -> AuditListResponse {
        let parameters = request.uri.queryParameters
        var query = AuditQuery(limit: try Self.limit(parameters.get("limit"), default: 50))
        if let userId = parameters.get("userId") {
            guard let id = UUID(uuidString: userId) else { throw AuthError.invalidArgument("userId is not a user id") }
            query.userId = id
        }
        if let event = parameters.get("event") {
            guard let name = AuditEventName(rawValue: event) else { throw AuthError.invalidArgument("event is not one of the audit event names") }
            query.event = name
        }
        query.since = try Self.date(parameters.get("since"), name: "since")
        query.until = try Self.date(parameters.get("until"), name: "until")
        let page = try await self.auth.auditLog(query, cursor: parameters.get("cursor"))
        return AuditListResponse(events: page.events.map(AuditEventResponse.init), nextCursor: page.nextCursor)
    }

    static func userId(_ context: Context) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw AuthError.userNotFound }
        return id
    }

    static func limit(_ text: String?, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let limit = Int(text), (1...500).contains(limit) else { throw AuthError.invalidArgument("limit must be a number from 1 to 500") }
        return limit
    }

    static func date(_ text: String?, name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = try? Date(text, strategy: .iso8601) else {
            throw AuthError.invalidArgument("\(name) must be an ISO 8601 time such as 2026-11-23T10:00:00Z")
        }
        return date
    }
}
