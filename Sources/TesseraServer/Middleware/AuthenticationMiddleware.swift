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
        switch try Self.authenticate(request, with: self.auth) {
        case .accessToken(let identity):
            context.identity = identity
        case .apiToken(let token):
            do {
                context.identity = try await self.auth.authenticate(apiToken: token)
            } catch AuthError.busy {
                throw Self.apiTokensBusy
            }
            context.viaAPIToken = true
            // An API token has no session: what acts on "this session" (sign it out, re-key it, or change the password,
            // which keeps it) would be misread, and deleting the account wants a person signed in.
            if Self.sessionRoutes.contains(where: { $0.method == request.method && $0.path == (context.endpointPath ?? request.uri.path) }) {
                throw Self.needsSession
            }
        }
        return try await next(request, context)
    }

    /// What the bearer header held: a verified access token, or a personal API token still to be checked (its
    /// first use on an instance may read the database).
    enum Credential {
        case accessToken(VerifiedAccessToken)
        case apiToken(String)
    }

    /// The caller of a single `Authorization: Bearer <token>` header (two headers are refused too), checked where
    /// the header's bytes lie: for a token seen before nothing is allocated, not even a `String` of the token.
    ///
    /// RFC 6750 §3.1: a request with no bearer credentials at all gets a challenge without an error code; one whose
    /// token was sent and refused gets `error="invalid_token"`.
    static func authenticate(_ request: Request, with auth: AuthService) throws -> Credential {
        var found: HTTPField?
        for field in request.headers where field.name == .authorization {
            guard found == nil else { throw Self.malformedToken }
            found = field
        }
        guard let found else { throw Self.missingToken }
        return try found.withUnsafeBytesOfValue { header in
            switch BearerToken.parse(header) {
            case .token(let range):
                let token = UnsafeBufferPointer(rebasing: header[range])
                if token.starts(with: Self.apiTokenPrefix) { return .apiToken(String(decoding: token, as: UTF8.self)) }
                return .accessToken(try auth.authenticate(accessTokenBytes: token))
            case .malformed: throw Self.malformedToken
            case .otherScheme: throw Self.missingToken
            }
        }
    }

    static let apiTokenPrefix = Array(APIToken.prefix.utf8)

    /// Routes about the caller's own session, refused to an API token with 403.
    static let sessionRoutes: [(method: HTTPRequest.Method, path: String)] = [
        (.post, "/api/auth/logout"), (.post, "/api/auth/logout-others"), (.post, "/api/me/password"), (.delete, "/api/me"),
    ]

    static let apiTokensBusy = ProblemError(
        .serviceUnavailable, code: "busy", detail: "Too many API tokens new to this instance are being checked; try again in a second.",
        headers: [.retryAfter: "1"]
    ).prepared()

    static let needsSession = ProblemError(
        .forbidden, code: "forbidden", detail: "This acts on a signed-in session; an API token has none. Revoke it with DELETE /api/tokens/{id}."
    )

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
