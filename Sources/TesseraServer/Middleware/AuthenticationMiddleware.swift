import Hummingbird
import TesseraCore

/// Puts the verified caller into the context, or answers 401 (RFC 6750) / 503 (stale index).
/// Handlers never read `Authorization` themselves.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearerToken(in: request) else {
            throw ProblemError.unauthorized(code: "invalid_token", detail: "A bearer access token is required.")
        }
        var context = context
        context.identity = try await self.auth.authenticate(accessToken: token)
        return try await next(request, context)
    }

    /// The token of a single `Authorization: Bearer <token>` header, or nil for anything else.
    static func bearerToken(in request: Request) -> String? {
        let values = request.headers[values: .authorization]
        guard values.count == 1, let header = values.first else { return nil }
        guard header.utf8.count <= AccessTokenVerifier.maximumTokenLength + 16 else { return nil }
        let parts = header.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = String(parts[1])
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return token
    }
}

/// Refuses callers without the admin role with 403 `forbidden`.
struct AdminMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard try context.requireIdentity().role == .admin else { throw AuthError.forbidden }
        return try await next(request, context)
    }
}
