import Foundation
import Hummingbird
import TesseraCore

/// `/api/auth`: registration, sign-in, refresh, every kind of sign-out, and the caller's sessions.
struct AuthController {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    /// False with `TESSERA_REGISTRATION=closed`: accounts are made by administrators only.
    let registrationOpen: Bool

    struct RegisterRequest: Decodable {
        var email: String
        var password: String
    }

    struct LoginRequest: Decodable {
        var email: String
        var password: String
        var deviceName: String?
        var terminalId: String?
    }

    struct RefreshRequest: Decodable {
        var refreshToken: String
        /// A value the client chose for this refresh and sends again when it retries: binds the retry to it.
        var clientNonce: String?
    }

    /// - Parameters:
    ///   - open: the `/api/auth` group without authentication.
    ///   - protected: the `/api/auth` group behind ``AuthenticationMiddleware``.
    func addRoutes(open: RouterGroup<Context>, protected: RouterGroup<Context>) {
        open.post("register", use: self.register)
        open.post("login", use: self.login)
        open.post("refresh", use: self.refresh)
        protected.post("logout", use: self.logout)
        for path in ["logout-all", "logout/all", "sessions/revoke-all"] {
            protected.post(RouterPath(path), use: self.logoutAll)
        }
        protected.post("logout-others", use: self.logoutOthers)
        protected.get("sessions", use: self.sessions)
        protected.delete("sessions/{id}", use: self.deleteSession)
    }

    @Sendable func register(request: Request, context: Context) async throws -> EditedResponse<RegisteredResponse> {
        guard self.registrationOpen else { throw SignInPages.registrationClosed }
        let body = try await request.decodeJSON(as: RegisterRequest.self, context: context)
        let user = try await self.auth.register(email: body.email, password: body.password, origin: request.origin(context: context))
        return EditedResponse(status: .created, response: RegisteredResponse(user: UserResponse(user)))
    }

    @Sendable func login(request: Request, context: Context) async throws -> TokenPairResponse {
        let body = try await request.decodeJSON(as: LoginRequest.self, context: context)
        let origin = request.origin(context: context, deviceName: body.deviceName, terminalId: body.terminalId)
        return TokenPairResponse(try await self.auth.login(email: body.email, password: body.password, origin: origin))
    }

    @Sendable func refresh(request: Request, context: Context) async throws -> TokenPairResponse {
        let body = try await request.decodeJSON(as: RefreshRequest.self, context: context)
        let origin = request.origin(context: context)
        return TokenPairResponse(try await self.auth.refresh(refreshToken: body.refreshToken, clientNonce: body.clientNonce, origin: origin))
    }

    @Sendable func logout(request: Request, context: Context) async throws -> HTTPResponse.Status {
        try await self.auth.logout(try context.requireIdentity(), origin: request.origin(context: context))
        return .noContent
    }

    @Sendable func logoutAll(request: Request, context: Context) async throws -> HTTPResponse.Status {
        try await self.auth.logoutAll(try context.requireIdentity(), origin: request.origin(context: context))
        return .noContent
    }

    @Sendable func logoutOthers(request: Request, context: Context) async throws -> TokenPairResponse {
        TokenPairResponse(try await self.auth.logoutOthers(try context.requireIdentity(), origin: request.origin(context: context)))
    }

    @Sendable func sessions(request: Request, context: Context) async throws -> SessionListResponse {
        let caller = try context.requireIdentity()
        let sessions = try await self.auth.sessions(of: caller)
        return SessionListResponse(sessions: sessions.map { SessionResponse($0, current: $0.id == caller.sessionId) })
    }

    @Sendable func deleteSession(request: Request, context: Context) async throws -> HTTPResponse.Status {
        let caller = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw AuthError.sessionNotFound }
        try await self.auth.revokeOwnSession(id, caller: caller, origin: request.origin(context: context))
        return .noContent
    }
}
