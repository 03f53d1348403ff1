import Foundation
import Hummingbird
import NIOCore
import TesseraCore
import TesseraStore

/// What other services and standard client libraries speak: the public keys (JWKS, RFC 7517), the server's metadata
/// (RFC 8414), token revocation (RFC 7009) and introspection (RFC 7662).
///
/// The two OAuth endpoints answer their errors as RFC 6749 §5.2 says (`{"error", "error_description"}`), which is what
/// OAuth client libraries read; a database or index that cannot answer is 503 with `Retry-After`, as everywhere.
struct OAuthController {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    let keys: KeyManager
    let clients: ClientRegistry
    let issuer: String

    func addRoutes(to router: Router<Context>) {
        router.get(".well-known/jwks.json", use: self.jwks)
        router.get(".well-known/oauth-authorization-server", use: self.metadata)
        router.post("oauth/revoke", use: self.revoke)
        router.post("oauth/introspect", use: self.introspect)
    }

    // MARK: Discovery

    @Sendable func jwks(request: Request, context: Context) async throws -> Response {
        let body = try JSONSerialization.data(withJSONObject: ["keys": self.keys.publishedKeys], options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/jwk-set+json",
                .cacheControl: "public, max-age=\(self.keys.schedule.jwksMaxAge.components.seconds)",
            ],
            body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    @Sendable func metadata(request: Request, context: Context) async throws -> Response {
        let (base, fromIssuer) = self.baseURL(for: request)
        // No token endpoint is listed: sign-in is Tessera's own JSON API, not an OAuth grant.
        let metadata: [String: Any] = [
            "issuer": self.issuer,
            "jwks_uri": base + "/.well-known/jwks.json",
            "revocation_endpoint": base + "/oauth/revoke",
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint": base + "/oauth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": [String](),
        ]
        let body = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys, .withoutEscapingSlashes])
        // Built from the request's Host, the answer must not be cached for anyone else.
        let caching = fromIssuer ? "public, max-age=300" : "no-store"
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: caching], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Where the endpoints are: under the issuer when it is an http(s) URL (as RFC 8414 asks of a public deployment:
    /// set `JWT_ISSUER=https://auth.example.com`), else under the address this request was sent to.
    func baseURL(for request: Request) -> (String, fromIssuer: Bool) {
        if let url = URL(string: self.issuer), let scheme = url.scheme, scheme == "https" || scheme == "http", url.host != nil {
            return (self.issuer.hasSuffix("/") ? String(self.issuer.dropLast()) : self.issuer, true)
        }
        return ("http://" + (request.head.authority ?? "localhost"), false)
    }

    // MARK: RFC 7009

    @Sendable func revoke(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await Self.form(&request, context: context)
        var clientId: String?
        if let credentials = try Self.clientCredentials(request, form: form) {
            guard let client = try await self.clients.authenticate(id: credentials.id, secret: credentials.secret) else { throw OAuthError.invalidClient }
            guard client.mayRevoke else { throw OAuthError.unauthorizedClient("This client may not revoke tokens.") }
            clientId = client.id
        }
        let token = try Self.token(form)
        try Self.checkHint(form["token_type_hint"])
        // RFC 7009 §2.2: a token that cannot be ours is "revoked" already.
        if token.utf8.count <= BearerToken.maximumTokenLength {
            try await self.auth.revoke(token: token, clientId: clientId, origin: request.origin(context: context))
        }
        return Response(status: .ok, headers: [.cacheControl: "no-store", .contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
    }

    // MARK: RFC 7662

    @Sendable func introspect(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await Self.form(&request, context: context)
        guard let credentials = try Self.clientCredentials(request, form: form) else { throw OAuthError.invalidClient }
        guard let client = try await self.clients.authenticate(id: credentials.id, secret: credentials.secret) else { throw OAuthError.invalidClient }
        guard client.mayIntrospect else { throw OAuthError.unauthorizedClient("This client may not introspect tokens.") }
        // RFC 7662 §2.1: the hint is only a hint; every kind of token is looked for whatever it says.
        let token = try Self.token(form)
        var body: [String: Any] = ["active": false]
        if token.utf8.count <= BearerToken.maximumTokenLength, let active = try await self.auth.introspect(token: token) {
            body = [
                "active": true,
                "iss": self.auth.settings.issuer,
                "aud": self.auth.settings.audience,
                "sub": active.userId.lowercasedString,
                "sid": active.sessionId.lowercasedString,
                "username": active.username,
                "role": active.role.rawValue,
                "iat": Int64(active.issuedAt.timeIntervalSince1970),
                "exp": Int64(active.expiresAt.timeIntervalSince1970),
            ]
            switch active.kind {
            case .accessToken:
                body["token_type"] = "Bearer"
                body["jti"] = active.jti?.lowercasedString
            case .refreshToken:
                body["token_use"] = "refresh_token"
            case .apiToken:
                // A bearer token like an access token; `jti` is the token's id, `sid` too (it has no session).
                body["token_type"] = "Bearer"
                body["jti"] = active.jti?.lowercasedString
                body["token_use"] = "api_token"
            }
        }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: .ok, headers: [.cacheControl: "no-store", .contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Reading the request

    static func form(_ request: inout Request, context: Context) async throws -> FormFields {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw OAuthError.invalidRequest("Send the parameters form-encoded (application/x-www-form-urlencoded), as RFC 6749 asks.")
        }
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        let form = FormFields(String(buffer: buffer))
        // RFC 6749 §3.1: a parameter sent twice is an invalid request, not one to pick from.
        if let name = form.repeated.sorted().first {
            throw OAuthError.invalidRequest("The parameter \(name.prefix(40)) is sent more than once.")
        }
        return form
    }

    static func token(_ form: FormFields) throws -> String {
        guard let token = form["token"], !token.isEmpty else { throw OAuthError.invalidRequest("The token parameter is required.") }
        return token
    }

    /// RFC 7009 §2.2.1 / RFC 7662: a hint names the kind of token; one this server does not issue is refused.
    static func checkHint(_ hint: String?) throws {
        guard let hint, !hint.isEmpty else { return }
        guard hint == "access_token" || hint == "refresh_token" else { throw OAuthError.unsupportedTokenType }
    }

    /// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, each part form-encoded first), or `client_id` and
    /// `client_secret` in the body; nil when neither is there. Both at once, or a malformed header, is an error.
    static func clientCredentials(_ request: Request, form: FormFields) throws -> (id: String, secret: String)? {
        var basic: (String, String)?
        if let header = request.headers[.authorization] {
            guard let credentials = BasicCredentials.parse(header) else { throw OAuthError.invalidClient }
            basic = credentials
        }
        let posted = form["client_id"].flatMap { id in form["client_secret"].map { (id, $0) } }
        switch (basic, posted) {
        case (let basic?, nil): return basic
        case (nil, let posted?): return posted
        case (nil, nil): return nil
        case (_?, _?): throw OAuthError.invalidRequest("Authenticate the client one way only (RFC 6749 §2.3).")
        }
    }
}

/// An RFC 6749 §5.2 error answer.
struct OAuthError: Error, HTTPResponseError, Sendable {
    let status: HTTPResponse.Status
    let error: String
    let description: String

    static let invalidClient = OAuthError(status: .unauthorized, error: "invalid_client", description: "Client authentication failed.")
    static let unsupportedTokenType = OAuthError(
        status: .badRequest, error: "unsupported_token_type", description: "This server issues access tokens and refresh tokens only."
    )
    static func invalidRequest(_ description: String) -> OAuthError { OAuthError(status: .badRequest, error: "invalid_request", description: description) }
    static func unauthorizedClient(_ description: String) -> OAuthError {
        OAuthError(status: .badRequest, error: "unauthorized_client", description: description)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if self.status == .unauthorized { headers[.wwwAuthenticate] = "Basic realm=\"tessera\"" }
        let body = try JSONSerialization.data(withJSONObject: ["error": self.error, "error_description": self.description], options: [.sortedKeys])
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
