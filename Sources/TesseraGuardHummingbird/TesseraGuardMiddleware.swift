import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TesseraGuard
import TesseraTokens

/// A request context that can carry the caller a ``TesseraGuardMiddleware`` verified.
public protocol GuardedRequestContext: RequestContext {
    /// The verified caller; set by the middleware before a protected handler runs.
    var identity: VerifiedAccessToken? { get set }
}

/// Protects the routes behind it with a ``TesseraGuard``: a request with a valid, unrevoked Tessera access token goes
/// on with the caller in `context.identity`; any other is answered as Tessera answers it — 401 `token_revoked` for a
/// revoked token, `invalid_token` for any other (RFC 6750, with `WWW-Authenticate`), or 503 `revocation_index_stale` with `Retry-After` when the guard has not
/// heard from Tessera within its bound.
public struct TesseraGuardMiddleware<Context: GuardedRequestContext>: RouterMiddleware {
    @usableFromInline let tesseraGuard: TesseraGuard

    public init(_ tesseraGuard: TesseraGuard) {
        self.tesseraGuard = tesseraGuard
    }

    /// Inlinable so that it is specialized for the application's context type: every protected request runs it.
    @inlinable
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var found: HTTPField?
        for field in request.headers where field.name == .authorization {
            // Two Authorization headers are one too many: refused rather than guessed between.
            guard found == nil else { return GuardProblem.response(GuardProblem.malformed) }
            found = field
        }
        guard let found else { return GuardProblem.response(GuardProblem.missing) }
        let decision = found.withUnsafeBytesOfValue { header -> TesseraGuard.Decision? in
            switch BearerToken.parse(header) {
            case .token(let range): self.tesseraGuard.check(tokenBytes: UnsafeBufferPointer(rebasing: header[range]))
            case .malformed, .otherScheme: nil
            }
        }
        switch decision {
        case .accepted(let verified):
            var context = context
            context.identity = verified
            return try await next(request, context)
        case .revoked:
            return GuardProblem.response(GuardProblem.revoked)
        case .refused(let reason):
            context.logger.debug("token refused", metadata: ["reason": "\(reason)"])
            return GuardProblem.response(GuardProblem.refused)
        case .unavailable(let retryAfter):
            var response = GuardProblem.response(GuardProblem.stale)
            response.headers[.retryAfter] = "\(retryAfter)"
            return response
        case nil:
            return GuardProblem.response(GuardProblem.malformed)
        }
    }
}

/// The answers of a refusal, encoded once: refusals are what an attacker can make a service repeat at will.
@usableFromInline
struct GuardProblem: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer

    @usableFromInline
    static func response(_ problem: GuardProblem) -> Response {
        Response(status: problem.status, headers: problem.headers, body: .init(byteBuffer: problem.body))
    }

    static func prepare(_ status: HTTPResponse.Status, code: String, detail: String, challenge: String?) -> GuardProblem {
        var headers: HTTPFields = [.contentType: "application/problem+json", .cacheControl: "no-store"]
        if let challenge { headers[.wwwAuthenticate] = challenge }
        let body: [String: Any] = [
            "type": "https://tessera.dev/problems/\(code.replacingOccurrences(of: "_", with: "-"))", "title": status.reasonPhrase, "status": status.code,
            "detail": detail, "code": code,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return GuardProblem(status: status, headers: headers, body: ByteBuffer(bytes: data))
    }

    @usableFromInline static let missing = prepare(.unauthorized, code: "invalid_token", detail: "A bearer access token is required.", challenge: "Bearer realm=\"tessera\"")
    @usableFromInline static let malformed = prepare(
        .unauthorized, code: "invalid_token", detail: "The Authorization header is not one bearer token.", challenge: "Bearer error=\"invalid_token\""
    )
    @usableFromInline static let revoked = prepare(
        .unauthorized, code: "token_revoked", detail: "The access token was revoked.", challenge: "Bearer error=\"invalid_token\""
    )
    @usableFromInline static let refused = prepare(
        .unauthorized, code: "invalid_token", detail: "The access token is invalid, expired or revoked.", challenge: "Bearer error=\"invalid_token\""
    )
    @usableFromInline static let stale = prepare(
        .serviceUnavailable, code: "revocation_index_stale",
        detail: "Revocations cannot be checked right now; refusing rather than admitting revoked tokens.", challenge: nil
    )
}
