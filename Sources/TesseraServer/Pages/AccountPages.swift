import Foundation
import Hummingbird
import TesseraCore

/// `/account`: who you are, your live sessions with "Sign out" for each, "Sign out of other devices", your API tokens
/// (`AccountPages+APITokens.swift`), changing your password, and deleting your account.
struct AccountPages {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    let browser: BrowserSession
    let renderer: PageRenderer

    struct AccountPage: Sendable {
        let title = "Your account"
        let header: PageHeader
        let notice: String?
        let email: String
        let role: String
        let memberSince: String
        let sessions: [SessionRow]
        let otherSessions: Bool
        let apiTokens: APITokenSection
    }

    struct SessionRow: Sendable {
        let id: String
        let device: String
        let client: String
        let ip: String
        let created: String
        let lastSeen: String
        let isCurrent: Bool
    }

    /// Adds the routes to the group behind ``PageSessionMiddleware`` and ``CSRFMiddleware``.
    func addRoutes(to signedIn: RouterGroup<Context>) {
        signedIn.get("account", use: self.account)
        signedIn.post("account/sessions/{id}/revoke", use: self.revokeSession)
        signedIn.post("account/logout-others", use: self.logoutOthers)
        signedIn.post("account/password", use: self.changePassword)
        signedIn.post("account/delete", use: self.deleteAccount)
        self.addAPITokenRoutes(to: signedIn)
    }

    @Sendable func account(request: Request, context: Context) async throws -> Response {
        try await self.renderAccount(request: request, context: context, newToken: nil)
    }

    /// The account page; `newToken` is shown once, on the answer to the form that made it.
    func renderAccount(request: Request, context: Context, newToken: NewAPITokenView?) async throws -> Response {
        let caller = try context.requireIdentity()
        let user = try await self.auth.me(caller)
        let sessions = try await self.auth.sessions(of: caller)
        // The database is ahead of this process's revocation index for a moment after a revoke elsewhere (the CLI,
        // another instance): the token still verifies here, but its session is gone. Never show a signed-in page
        // whose own session the database says has ended: the browser is signed out, as on its next click anyway.
        guard sessions.contains(where: { $0.id == caller.sessionId }) else {
            context.logger.debug("page session not among the live sessions: signed out ahead of the revocation index")
            return PageSessionMiddleware.signedOut(request: request, location: "/login?m=revoked", browser: self.browser)
        }
        // This browser's session first, then the others by latest activity.
        let rows = sessions.sorted { ($0.id == caller.sessionId ? 1 : 0, $0.lastSeenAt) > ($1.id == caller.sessionId ? 1 : 0, $1.lastSeenAt) }.map {
            SessionRow(
                id: $0.id.lowercasedString, device: $0.deviceName ?? "Unnamed device", client: PageFormat.userAgent($0.userAgent),
                ip: $0.ip ?? "unknown", created: PageFormat.time($0.createdAt), lastSeen: PageFormat.time($0.lastSeenAt), isCurrent: $0.id == caller.sessionId
            )
        }
        let notice = request.uri.queryParameters["notice"].map(String.init)
        let page = AccountPage(
            header: try PageHeader(user: user, context: context, onAdmin: false), notice: PageFormat.notice(notice) ?? Self.apiTokenNotice(notice),
            email: user.email, role: user.role.rawValue, memberSince: PageFormat.time(user.createdAt), sessions: rows, otherSessions: rows.count > 1,
            apiTokens: try await self.apiTokenSection(of: caller, newToken: newToken)
        )
        return self.renderer.render("account", page)
    }

    @Sendable func revokeSession(request: Request, context: Context) async throws -> Response {
        let caller = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw AuthError.sessionNotFound }
        let origin = request.origin(context: context)
        if id == caller.sessionId {
            try await self.auth.logout(caller, origin: origin)
            return pageRedirect(to: "/login?m=signed-out", request: request, cookies: self.browser.clearedCookies())
        }
        try await self.auth.revokeOwnSession(id, caller: caller, origin: origin)
        return pageRedirect(to: "/account?notice=session-revoked", request: request)
    }

    @Sendable func logoutOthers(request: Request, context: Context) async throws -> Response {
        let pair = try await self.auth.logoutOthers(try context.requireIdentity(), origin: request.origin(context: context))
        return pageRedirect(to: "/account?notice=others-signed-out", request: request, cookies: self.browser.cookies(for: pair))
    }

    @Sendable func changePassword(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let current = try form.require("currentPassword", label: "Current password")
        let new = try form.require("newPassword", label: "New password")
        guard form["confirmPassword"] == new else {
            throw ProblemError(.unprocessableContent, code: "password_mismatch", detail: "The two new passwords differ.")
        }
        let pair = try await self.auth.changePassword(
            try context.requireIdentity(), currentPassword: current, newPassword: new, origin: request.origin(context: context)
        )
        return pageRedirect(to: "/account?notice=password-changed", request: request, cookies: self.browser.cookies(for: pair))
    }

    /// Deletes the account after checking its password; the browser, signed out with it, lands on the sign-in page.
    @Sendable func deleteAccount(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let password = try form.require("password", label: "Your password")
        try await self.auth.deleteOwnAccount(try context.requireIdentity(), password: password, origin: request.origin(context: context))
        return pageRedirect(to: "/login?m=account-deleted", request: request, cookies: self.browser.clearedCookies())
    }
}
