import HTTPTypes
import Hummingbird
import TesseraCore

/// Puts the verified caller into the context, or answers 401 (RFC 6750) / 503 (stale index).
/// Handlers never read `Authorization` themselves.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.identity = try Self.authenticate(request, with: self.auth)
        return try await next(request, context)
    }

    /// The caller of a single `Authorization: Bearer <token>` header (two headers are refused too), checked where
    /// the header's bytes lie: for a token seen before nothing is allocated, not even a `String` of the token.
    ///
    /// RFC 6750 §3.1: a request with no bearer credentials at all gets a challenge without an error code; one whose
    /// token was sent and refused gets `error="invalid_token"`.
    static func authenticate(_ request: Request, with auth: AuthService) throws -> VerifiedAccessToken {
        var found: HTTPField?
        for field in request.headers where field.name == .authorization {
            guard found == nil else { throw Self.malformedToken }
            found = field
        }
        guard let found else { throw Self.missingToken }
        return try found.withUnsafeBytesOfValue { header in
            switch BearerToken.parse(header) {
            case .token(let range): return try auth.authenticate(accessTokenBytes: UnsafeBufferPointer(rebasing: header[range]))
            case .malformed: throw Self.malformedToken
            case .otherScheme: throw Self.missingToken
            }
        }
    }

    static let missingToken = ProblemError(
        .unauthorized, code: "invalid_token", detail: "A bearer access token is required.", headers: [.wwwAuthenticate: "Bearer realm=\"tessera\""]
    ).prepared()
    static let malformedToken = ProblemError.unauthorized(code: "invalid_token", detail: "The Authorization header is not one bearer token.").prepared()
}

/// Refuses callers without the admin role with 403 `forbidden`.
struct AdminMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard try context.requireIdentity().role == .admin else { throw AuthError.forbidden }
        return try await next(request, context)
    }
}
