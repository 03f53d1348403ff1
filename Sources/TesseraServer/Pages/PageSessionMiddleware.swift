import Hummingbird
import TesseraCore

/// Signs a page request in from its cookies: the access cookie when it verifies and is not revoked, otherwise a
/// silent refresh from the refresh cookie (new cookies on the answer). A browser whose session was revoked or has
/// ended lands on `/login` with "You were signed out" and its cookies cleared; the pages' script gets the same as JSON.
struct PageSessionMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    let browser: BrowserSession
    let refresher: RefreshCoalescer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let access = request.cookies[BrowserSession.accessCookie]?.value ?? ""
        let refresh = request.cookies[BrowserSession.refreshCookie]?.value ?? ""
        var identity: VerifiedAccessToken?
        var issued: TokenPair?
        if !access.isEmpty {
            identity = try self.verify(access)
        }
        if identity == nil, !refresh.isEmpty {
            do {
                let pair = try await self.refresher.refresh(refresh, origin: request.origin(context: context))
                identity = try self.verify(pair.accessToken)
                issued = pair
            } catch let error as AuthError where error == .revocationIndexStale {
                throw error
            } catch {
                context.logger.debug("browser session could not be refreshed", metadata: ["error": "\(error)"])
            }
        }
        guard let identity else {
            let hadSession = !access.isEmpty || !refresh.isEmpty
            return Self.signedOut(request: request, location: hadSession ? "/login?m=revoked" : "/login", browser: self.browser)
        }
        var context = context
        context.identity = identity
        context.csrfToken = self.browser.csrfToken(for: .session(identity.sessionId))
        var response = try await next(request, context)
        // A handler that signed out or re-keyed the session has set its own cookies.
        if let issued, !response.headers[values: .setCookie].contains(where: { $0.hasPrefix(BrowserSession.accessCookie + "=") }) {
            for cookie in self.browser.cookies(for: issued) { response.setCookie(cookie) }
        }
        return response
    }

    /// The token when it verifies and is not revoked; nil otherwise. A stale index is not a sign-out: it fails closed with 503.
    private func verify(_ token: String) throws -> VerifiedAccessToken? {
        do {
            return try self.auth.authenticate(accessToken: token)
        } catch .revocationIndexStale {
            throw AuthError.revocationIndexStale
        } catch {
            return nil
        }
    }

    /// Sends the browser to the sign-in page and makes it forget its session.
    static func signedOut(request: Request, location: String, browser: BrowserSession) -> Response {
        var response = pageRedirect(to: location, request: request, cookies: browser.clearedCookies())
        if request.isPageFetch { response.status = .unauthorized }
        return response
    }
}
