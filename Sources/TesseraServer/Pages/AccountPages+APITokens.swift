import Foundation
import Hummingbird
import TesseraCore

/// The account page's "API tokens": the list, "Create token" and "Revoke".
///
/// A new token's secret travels in exactly one place, the body of the answer to the creating POST (`no-store`, like
/// every page): never in a URL, a redirect, a cookie or a log line. The pages' script shows it from a JSON answer and
/// then reloads only the list, so that reloading the page afterwards shows the list without the secret. Without the
/// script the POST answers the account page itself with the secret in it; reloading that page would post again (the
/// browser asks first) and make another token, which is the price of never putting the secret anywhere else.
extension AccountPages {
    /// One token in the list (never its secret).
    struct APITokenRow: Sendable {
        let id: String
        let name: String
        let created: String
        let lastUsed: String
        let expires: String
        let isActive: Bool
        /// "Revoked" or "Expired" for a token no longer accepted; nil for an active one.
        let status: String?
    }

    /// The secret of the token just made, shown this once.
    struct NewAPITokenView: Sendable {
        let name: String
        let secret: String
    }

    /// What the section shows: the list, the form's bounds (Core's), and a new secret when this very answer made it.
    struct APITokenSection: Sendable {
        let tokens: [APITokenRow]
        /// Set only on the answer to a form posted without the pages' script.
        let newToken: NewAPITokenView?
        let defaultDays: Int
        let maximumDays = AuthService.maximumAPITokenDays
        let maximumNameLength = AuthService.maximumAPITokenNameLength
    }

    func addAPITokenRoutes(to signedIn: RouterGroup<Context>) {
        signedIn.post("account/tokens", use: self.createAPIToken)
        signedIn.post("account/tokens/{id}/revoke", use: self.revokeAPIToken)
    }

    /// The section for the caller: their tokens, newest first.
    func apiTokenSection(of caller: VerifiedAccessToken, newToken: NewAPITokenView?) async throws -> APITokenSection {
        let now = self.auth.clock.now()
        let rows = try await self.auth.apiTokens(userId: caller.userId).map { token in
            let (record, active) = (token.record, token.active)
            // A token cut by "sign out of all devices", a password change or an admin has no `invalidated_at` of its
            // own, but is refused all the same: "Revoked" too.
            let status: String? = active ? nil : (record.invalidatedAt == nil && record.expiresAt <= now ? "Expired" : "Revoked")
            return APITokenRow(
                id: record.id.lowercasedString, name: record.name, created: PageFormat.time(record.createdAt),
                lastUsed: record.lastUsedAt.map(PageFormat.time) ?? "never", expires: PageFormat.time(record.expiresAt), isActive: active,
                status: status
            )
        }
        return APITokenSection(tokens: rows, newToken: newToken, defaultDays: self.auth.settings.apiTokenDays)
    }

    @Sendable func createAPIToken(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let name = try form.require("name", label: "Name")
        var days: Int?
        if let text = form["days"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            guard let parsed = Int(text) else {
                throw ProblemError(.badRequest, code: "invalid_body", detail: "Expires after must be a whole number of days.")
            }
            days = parsed
        }
        let caller = try context.requireIdentity()
        let made = try await self.auth.createAPIToken(
            userId: caller.userId, name: name, days: days, actorId: caller.userId, origin: request.origin(context: context)
        )
        guard request.isPageFetch else {
            let shown = NewAPITokenView(name: made.record.name, secret: made.token)
            return try await self.renderAccount(request: request, context: context, newToken: shown)
        }
        let fields = ["token": made.token, "id": made.record.id.lowercasedString, "name": made.record.name]
        let body = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        return Response(
            status: .created, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    @Sendable func revokeAPIToken(request: Request, context: Context) async throws -> Response {
        let caller = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw AuthError.apiTokenNotFound }
        try await self.auth.revokeAPIToken(id: id, owner: caller.userId, actorId: caller.userId, origin: request.origin(context: context))
        return pageRedirect(to: "/account?notice=api-token-revoked", request: request)
    }

    /// The notices of this section, by code (the others are ``PageFormat/notice(_:)``'s).
    static func apiTokenNotice(_ code: String?) -> String? {
        code == "api-token-revoked" ? "The API token was revoked: it is refused from now on." : nil
    }
}
