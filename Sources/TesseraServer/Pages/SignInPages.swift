import Hummingbird
import TesseraCore

/// `/login`, `/register` and the two sign-out buttons of every page's header.
struct SignInPages {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    let browser: BrowserSession
    let renderer: PageRenderer
    let registrationOpen: Bool

    struct FormPage: Sendable {
        let title: String
        let csrf: String
        let notice: String?
        let registrationOpen: Bool
    }

    /// - Parameters:
    ///   - anonymous: pages for browsers that are not signed in (CSRF bound to a nonce cookie).
    ///   - signedIn: pages behind ``PageSessionMiddleware``.
    func addRoutes(anonymous: RouterGroup<Context>, signedIn: RouterGroup<Context>) {
        anonymous.get("login", use: self.loginPage)
        anonymous.post("login", use: self.login)
        anonymous.get("register", use: self.registerPage)
        anonymous.post("register", use: self.register)
        signedIn.post("logout", use: self.logout)
        signedIn.post("logout-all", use: self.logoutAll)
    }

    @Sendable func loginPage(request: Request, context: Context) async throws -> Response {
        // A browser that is still signed in goes straight to its account.
        if let access = request.cookies[BrowserSession.accessCookie]?.value, !access.isEmpty,
            (try? self.auth.authenticate(accessToken: access)) != nil
        {
            return pageRedirect(to: "/account", request: request)
        }
        return self.formPage("login", title: "Sign in", request: request)
    }

    @Sendable func login(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let email = try form.require("email", label: "Email")
        let password = try form.require("password", label: "Password")
        let deviceName = form["deviceName"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : String($0.prefix(100)) }
        let account = Credentials.normalize(email: email)
        let device = account.flatMap { self.browser.trustedDevice(request.cookies[BrowserSession.deviceCookie]?.value, account: $0) }
        let pair = try await self.auth.login(
            email: email, password: password, origin: request.origin(context: context, deviceName: deviceName), trustedDevice: device
        )
        var cookies = self.browser.cookies(for: pair)
        if let account { cookies.append(self.browser.deviceCookie(account: account, keeping: device)) }
        return pageRedirect(to: "/account", request: request, cookies: cookies)
    }

    @Sendable func registerPage(request: Request, context: Context) async throws -> Response {
        guard self.registrationOpen else { throw Self.registrationClosed }
        return self.formPage("register", title: "Create an account", request: request)
    }

    @Sendable func register(request: Request, context: Context) async throws -> Response {
        guard self.registrationOpen else { throw Self.registrationClosed }
        var request = request
        let form = try await request.formFields(context: context)
        let email = try form.require("email", label: "Email")
        let password = try form.require("password", label: "Password")
        guard form["confirmPassword"] == password else {
            throw ProblemError(.unprocessableContent, code: "password_mismatch", detail: "The two passwords differ.")
        }
        let origin = request.origin(context: context)
        _ = try await self.auth.register(email: email, password: password, origin: origin)
        let pair = try await self.auth.login(email: email, password: password, origin: origin)
        return pageRedirect(to: "/account", request: request, cookies: self.browser.cookies(for: pair))
    }

    @Sendable func logout(request: Request, context: Context) async throws -> Response {
        try await self.auth.logout(try context.requireIdentity(), origin: request.origin(context: context))
        return pageRedirect(to: "/login?m=signed-out", request: request, cookies: self.browser.clearedCookies())
    }

    @Sendable func logoutAll(request: Request, context: Context) async throws -> Response {
        try await self.auth.logoutAll(try context.requireIdentity(), origin: request.origin(context: context))
        return pageRedirect(to: "/login?m=signed-out-all", request: request, cookies: self.browser.clearedCookies())
    }

    static let registrationClosed = ProblemError(
        .forbidden, code: "registration_closed", detail: "Registration is closed on this server; ask an administrator for an account."
    )

    /// The sign-in or registration form, with a CSRF token bound to this browser's nonce cookie (set when missing).
    private func formPage(_ template: String, title: String, request: Request) -> Response {
        var cookies: [Cookie] = []
        var nonce = request.cookies[BrowserSession.nonceCookie]?.value ?? ""
        if nonce.isEmpty {
            let cookie = self.browser.newNonceCookie()
            nonce = cookie.value
            cookies.append(cookie)
        }
        let page = FormPage(
            title: title, csrf: self.browser.csrfToken(for: .nonce(nonce)), notice: PageFormat.notice(request.uri.queryParameters["m"].map(String.init)),
            registrationOpen: self.registrationOpen
        )
        return self.renderer.render(template, page, cookies: cookies)
    }
}
