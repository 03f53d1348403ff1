import Hummingbird
import TesseraCore

/// Refuses every state-changing page request that does not carry the CSRF token of this browser: the `csrf` form
/// field or the `X-CSRF-Token` header, bound to the signed-in session (or to the nonce cookie before sign-in).
/// Requests that say they come from another site (`Origin`, `Sec-Fetch-Site`) are refused before that.
///
/// Stops cross-site request forgery: a form on another site can make the browser send its cookies, not the token.
struct CSRFMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let browser: BrowserSession

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method != .get, request.method != .head else { return try await next(request, context) }
        if request.headers[.init("Sec-Fetch-Site")!] == "cross-site" || !Self.originMatchesHost(request) {
            throw Self.refused("The request came from another site.")
        }
        let binding: BrowserSession.Binding
        if let identity = context.identity {
            binding = .session(identity.sessionId)
        } else if let nonce = request.cookies[BrowserSession.nonceCookie]?.value, !nonce.isEmpty {
            binding = .nonce(nonce)
        } else {
            throw Self.refused("The form has expired; reload the page and try again.")
        }
        var request = request
        var presented = request.headers[BrowserSession.csrfHeader]
        if presented == nil {
            presented = try await request.formFields(context: context)[BrowserSession.csrfField]
        }
        guard let presented, self.browser.isValid(csrfToken: presented, for: binding) else {
            context.logger.notice("page request refused: missing or wrong CSRF token", metadata: ["path": "\(request.uri.path)"])
            throw Self.refused("The form has expired or did not come from Tessera; reload the page and try again.")
        }
        return try await next(request, context)
    }

    static func refused(_ detail: String) -> ProblemError {
        ProblemError(.forbidden, code: "csrf_failed", detail: detail)
    }

    /// An `Origin` header, when the browser sends one, must name this very host.
    static func originMatchesHost(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority, origin != "null" else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }
}
