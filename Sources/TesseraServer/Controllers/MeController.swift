import Hummingbird
import TesseraCore

/// `/api/me` and `/api/v1/ping-auth`: the caller's account, password change, deletion, and a cheap authenticated probe.
struct MeController {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    struct PasswordChangeRequest: Decodable {
        var currentPassword: String
        var newPassword: String
    }

    struct DeletionRequest: Decodable {
        var password: String
    }

    /// Adds routes to a group behind ``AuthenticationMiddleware`` rooted at `/api`.
    func addRoutes(to protected: RouterGroup<Context>) {
        protected.get("me", use: self.me)
        protected.post("me/password", use: self.changePassword)
        protected.delete("me", use: self.deleteMe)
        protected.get("v1/ping-auth", use: self.ping)
    }

    @Sendable func me(request: Request, context: Context) async throws -> UserResponse {
        UserResponse(try await self.auth.me(try context.requireIdentity()))
    }

    @Sendable func changePassword(request: Request, context: Context) async throws -> TokenPairResponse {
        let body = try await request.decodeJSON(as: PasswordChangeRequest.self, context: context)
        let pair = try await self.auth.changePassword(
            try context.requireIdentity(), currentPassword: body.currentPassword, newPassword: body.newPassword,
            origin: request.origin(context: context)
        )
        return TokenPairResponse(pair)
    }

    /// 204 once the account is deleted; a wrong password is 401 `invalid_credentials`, as for a password change.
    @Sendable func deleteMe(request: Request, context: Context) async throws -> HTTPResponse.Status {
        let body = try await request.decodeJSON(as: DeletionRequest.self, context: context)
        try await self.auth.deleteOwnAccount(try context.requireIdentity(), password: body.password, origin: request.origin(context: context))
        return .noContent
    }

    @Sendable func ping(request: Request, context: Context) async throws -> PingResponse {
        PingResponse(userId: try context.requireIdentity().userId)
    }
}
