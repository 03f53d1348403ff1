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
    ///
    /// Works on the UTF-8 bytes: splitting a 450-byte header as `Character`s showed up as the largest cost of a
    /// protected request in a profile.
    static func bearerToken(in request: Request) -> String? {
        let values = request.headers[values: .authorization]
        guard values.count == 1, let header = values.first else { return nil }
        let utf8 = header.utf8
        guard utf8.count <= AccessTokenVerifier.maximumTokenLength + 16 else { return nil }
        let scheme = "bearer".utf8
        var index = utf8.startIndex
        for expected in scheme {
            guard index != utf8.endIndex, utf8[index] | 0x20 == expected else { return nil }
            index = utf8.index(after: index)
        }
        guard index != utf8.endIndex, utf8[index] == UInt8(ascii: " ") else { return nil }
        while index != utf8.endIndex, utf8[index] == UInt8(ascii: " ") { index = utf8.index(after: index) }
        var end = utf8.endIndex
        while end > index, utf8[utf8.index(before: end)] == UInt8(ascii: " ") { end = utf8.index(before: end) }
        let token = utf8[index..<end]
        // One token of visible ASCII: no inner spaces, no control characters, nothing beyond ASCII.
        guard !token.isEmpty, token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(Substring(token))
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
