import Foundation
import Hummingbird
import TesseraCore
import TesseraStore

/// `/admin`: accounts with search, deactivate / activate, revoke, un-revoke, password reset, role change and deletion;
/// revoke-all and its undo; the audit log with filters and paging. Behind ``PageSessionMiddleware``, ``AdminMiddleware`` and ``CSRFMiddleware``.
struct AdminPages {
    typealias Context = TesseraRequestContext
    let auth: AuthService
    let browser: BrowserSession
    let renderer: PageRenderer
    let keys: KeyManager
    let clients: ClientRegistry

    struct AdminPage: Sendable {
        let title = "Administration"
        let header: PageHeader
        let notice: String?
        let search: String
        let users: [UserRow]
        let nextUsersLink: String?
        /// Whether the latest revoke-all may be undone (no undo button otherwise).
        let canUndoRevokeAll: Bool
        let filter: AuditFilter
        let events: [EventOption]
        let auditError: String?
        let audit: [AuditRow]
        let nextAuditLink: String?
        let algorithm: String
        let keys: [KeyRow]
        let clients: [ClientRow]
    }

    struct KeyRow: Sendable {
        let kid: String
        let state: String
        let activeFrom: String
        let verifiesUntil: String
    }

    struct ClientRow: Sendable {
        let id: String
        let name: String
        let permissions: String
        let created: String
    }

    struct UserRow: Sendable {
        let id: String
        let email: String
        let role: String
        /// Which role the menu offers instead ("Make user" for an admin, "Make admin" for a user).
        let isAdmin: Bool
        let isActive: Bool
        let isSelf: Bool
        let created: String
        /// Whether this account's latest cut was an operator's revoke that may be undone (no undo button otherwise).
        let canUndoRevoke: Bool
    }

    struct AuditFilter: Sendable {
        var user = ""
        var event = ""
        var since = ""
        var until = ""
    }

    struct EventOption: Sendable {
        let name: String
        let selected: Bool
    }

    /// One audit event: when, what, by whom and to whom on one line each; where from and the event's details
    /// (session, reason, ids…) folded into a `<details>` so that a long value never widens the table.
    struct AuditRow: Sendable {
        let at: String
        /// `at` as ISO 8601, for `<time datetime>`.
        let atISO: String
        let event: String
        let actor: String
        let subject: String
        let ip: String
        let client: String
        let details: [DetailPair]
        /// What the closed `<details>` says: the names of the fields it holds.
        let detailsSummary: String
        let hasDetails: Bool

        struct DetailPair: Sendable {
            let key: String
            let value: String
        }

        init(_ record: AuditRecord, emails: [UUID: String]) {
            func person(_ id: UUID?) -> String {
                guard let id else { return "—" }
                return emails[id] ?? id.lowercasedString
            }
            self.at = PageFormat.time(record.at)
            self.atISO = record.at.ISO8601Format()
            self.event = record.event.rawValue
            self.actor = person(record.actorId)
            // A revoke of several accounts names each of them.
            self.subject = record.subjectIds.isEmpty ? person(record.subjectId) : record.subjectIds.map { person($0) }.joined(separator: ", ")
            self.ip = record.ip ?? "—"
            self.client = record.userAgent.map { PageFormat.userAgent($0) } ?? "—"
            var pairs: [DetailPair] = []
            if let session = record.sessionId { pairs.append(DetailPair(key: "session", value: String(session.lowercasedString.prefix(8)))) }
            pairs += record.details.sorted { $0.key < $1.key }.map { DetailPair(key: $0.key, value: $0.value) }
            self.details = pairs
            self.detailsSummary = pairs.map(\.key).joined(separator: ", ")
            self.hasDetails = !pairs.isEmpty
        }
    }

    func addRoutes(to admin: RouterGroup<Context>) {
        admin.get("admin", use: self.page)
        for action in ["deactivate", "activate", "revoke", "unrevoke", "password", "role", "delete"] {
            admin.post(RouterPath("admin/users/{id}/\(action)")) { request, context in
                try await self.userAction(action, request: request, context: context)
            }
        }
        admin.post("admin/revoke-all", use: self.revokeAll)
        admin.post("admin/explain", use: self.explain)
        admin.post("admin/unrevoke-all", use: self.unrevokeAll)
    }

    /// The answer of the console's "Why is this token refused?" box: a page of its own (a POST's answer, so that
    /// the token never enters a URL), with the box again.
    struct ExplainPage: Sendable {
        let title = "Why is this token refused?"
        let header: PageHeader
        let result: Result?

        struct Result: Sendable {
            let accepted: Bool
            let verdict: String
            let reason: String
            let tokenType: String
            let detail: String
            let userId: String?
            let sessionId: String?
            let expiresAt: String?
            let hasCuts: Bool
            let cuts: [Cut]
        }

        struct Cut: Sendable {
            let kind: String
            let cause: String
            let at: String
            let by: String
            let ip: String
            let audit: String
        }
    }

    @Sendable func explain(request: Request, context: Context) async throws -> Response {
        let me = try await self.auth.me(try context.requireIdentity())
        var request = request
        let form = try await request.formFields(context: context)
        let token = try form.require("token", label: "The token")
        let explanation = try await self.auth.explain(token: token)
        let result = ExplainPage.Result(
            accepted: explanation.accepted, verdict: explanation.accepted ? "Accepted" : "Refused", reason: explanation.reason,
            tokenType: explanation.tokenType.replacingOccurrences(of: "_", with: " "), detail: explanation.detail,
            userId: explanation.userId?.lowercasedString, sessionId: explanation.sessionId?.lowercasedString,
            expiresAt: explanation.expiresAt.map { PageFormat.time($0) }, hasCuts: !explanation.cuts.isEmpty,
            cuts: explanation.cuts.map { cut in
                ExplainPage.Cut(
                    kind: cut.kind, cause: cut.cause.replacingOccurrences(of: "_", with: " "), at: PageFormat.time(cut.at),
                    by: cut.actorEmail ?? cut.actorId?.lowercasedString ?? "—", ip: cut.ip ?? "—",
                    audit: cut.auditId.map { "#\($0) \(cut.auditEvent ?? "")" } ?? "—"
                )
            }
        )
        return self.renderer.render("explain", ExplainPage(header: try PageHeader(user: me, context: context, onAdmin: true), result: result))
    }

    @Sendable func page(request: Request, context: Context) async throws -> Response {
        let caller = try context.requireIdentity()
        let me = try await self.auth.me(caller)
        let query = request.uri.queryParameters
        func parameter(_ name: String) -> String {
            query[Substring(name)].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        let search = parameter("q")
        let users = try await self.auth.listUsers(search: search.isEmpty ? nil : search, cursor: parameter("cursor").nilIfEmpty, limit: 25)
        let filter = AuditFilter(user: parameter("auditUser"), event: parameter("event"), since: parameter("since"), until: parameter("until"))
        var auditQuery = AuditQuery(limit: 25)
        var auditError: String?
        do {
            auditQuery = try await self.auditQuery(filter)
        } catch let error as PageFilterError {
            auditError = error.description
        } catch {
            // Database and other faults are logged, never shown: their text is not for a page.
            context.logger.error("audit filter failed", metadata: ["error.type": "\(type(of: error))"])
            auditError = "The audit log could not be read right now; try again."
        }
        var events: [AuditRecord] = []
        var nextAuditCursor: String?
        if auditError == nil {
            let audit = try await self.auth.auditLog(auditQuery, cursor: parameter("auditCursor").nilIfEmpty)
            events = audit.events
            nextAuditCursor = audit.nextCursor
        }
        let undoable = try await self.auth.undoableCuts(userIds: users.users.map(\.id))
        let people = Set(events.flatMap { [$0.actorId, $0.subjectId].compactMap { $0 } + $0.subjectIds })
        let emails = try await self.auth.emails(of: Array(people))
        let keys = try await self.keys.list().filter { $0.state != .expired }.reversed().map { status in
            KeyRow(
                kid: status.key.kid, state: status.state.rawValue,
                activeFrom: status.key.algorithm == .hs256 ? "—" : PageFormat.time(status.key.activeFrom),
                verifiesUntil: status.verifiesUntil.map { PageFormat.time($0) } ?? "—"
            )
        }
        let clients = try await self.clients.store.liveClients().map { client in
            ClientRow(id: client.id, name: client.name, permissions: client.permissionNames.joined(separator: ", "), created: PageFormat.time(client.createdAt))
        }
        let page = AdminPage(
            header: try PageHeader(user: me, context: context, onAdmin: true),
            notice: PageFormat.notice(query["notice"].map(String.init)),
            search: search,
            users: users.users.map {
                UserRow(
                    id: $0.id.lowercasedString, email: $0.email, role: $0.role.rawValue, isAdmin: $0.role == .admin, isActive: $0.isActive,
                    isSelf: $0.id == me.id,
                    created: PageFormat.time($0.createdAt), canUndoRevoke: undoable.subjects.contains($0.id)
                )
            },
            nextUsersLink: users.nextCursor.map { Self.link(["q": search, "cursor": $0]) },
            canUndoRevokeAll: undoable.global,
            filter: filter,
            events: AuditEventName.allCases.map { EventOption(name: $0.rawValue, selected: $0.rawValue == filter.event) },
            auditError: auditError,
            audit: events.map { AuditRow($0, emails: emails) },
            nextAuditLink: nextAuditCursor.map {
                Self.link(["q": search, "auditUser": filter.user, "event": filter.event, "since": filter.since, "until": filter.until, "auditCursor": $0])
            },
            algorithm: self.keys.algorithm.rawValue,
            keys: keys,
            clients: clients
        )
        return self.renderer.render("admin", page)
    }

    func userAction(_ action: String, request: Request, context: Context) async throws -> Response {
        let caller = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw AuthError.userNotFound }
        var request = request
        let form = try await request.formFields(context: context)
        let origin = request.origin(context: context)
        let reason = form.reason
        let notice: String
        // Deactivating, revoking, resetting the password of or changing the role of one's own account ends this
        // session too: say so on the sign-in page instead of a console that the next click would leave for "You were
        // signed out".
        var ownNotice = Self.ownAccountNotices[action]
        switch action {
        case "deactivate":
            _ = try await self.auth.deactivate(userId: id, actorId: caller.userId, reason: reason, origin: origin)
            notice = "user-deactivated"
        case "activate":
            _ = try await self.auth.activate(userId: id, actorId: caller.userId, origin: origin)
            notice = "user-activated"
        case "revoke":
            guard try await self.auth.revokeUsers([id], actorId: caller.userId, reason: reason, origin: origin) > 0 else { throw AuthError.userNotFound }
            notice = "user-revoked"
        case "unrevoke":
            _ = try await self.auth.unrevoke(.subject(id), actorId: caller.userId, reason: reason, origin: origin)
            notice = "user-unrevoked"
        case "role":
            guard let role = form["role"].flatMap(Role.init(rawValue:)) else { throw AuthError.invalidArgument("role must be admin or user") }
            let outcome = try await self.auth.changeRole(userId: id, to: role, actorId: caller.userId, origin: origin)
            notice = outcome.changed ? "role-changed" : "role-unchanged"
            if !outcome.changed { ownNotice = nil }
        case "delete":
            // One's own account is deleted from the account page, with one's password: refused here.
            try await self.auth.deleteAccount(userId: id, actorId: caller.userId, origin: origin)
            notice = "user-deleted"
        default:
            let password = try form.require("newPassword", label: "New password")
            _ = try await self.auth.resetPassword(userId: id, newPassword: password, actorId: caller.userId, origin: origin)
            notice = "password-reset"
        }
        if id == caller.userId, let own = ownNotice {
            return pageRedirect(to: "/login?m=\(own)", request: request, cookies: self.browser.clearedCookies())
        }
        return pageRedirect(to: "/admin?notice=\(notice)", request: request)
    }

    /// The sign-in page's notice after an action on the admin's own account that ended the admin's own session.
    static let ownAccountNotices = [
        "deactivate": "own-account-deactivated", "revoke": "own-account-revoked", "password": "own-password-reset", "role": "own-role-changed",
    ]

    @Sendable func revokeAll(request: Request, context: Context) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let reason = form.reason
        _ = try await self.auth.revokeAll(actorId: try context.requireIdentity().userId, reason: reason, origin: request.origin(context: context))
        // The admin's own session was issued before now: it is revoked too.
        return pageRedirect(to: "/login?m=revoked-all", request: request, cookies: self.browser.clearedCookies())
    }

    @Sendable func unrevokeAll(request: Request, context: Context) async throws -> Response {
        _ = try await self.auth.unrevoke(.global, actorId: try context.requireIdentity().userId, reason: nil, origin: request.origin(context: context))
        return pageRedirect(to: "/admin?notice=unrevoked-all", request: request)
    }

    /// The audit filter of the form: a user by email or id, an event name, and times (`datetime-local`, read as UTC).
    private func auditQuery(_ filter: AuditFilter) async throws -> AuditQuery {
        var query = AuditQuery(limit: 25)
        if !filter.user.isEmpty {
            if let id = UUID(uuidString: filter.user) {
                query.userId = id
            } else if let user = try await self.auth.user(email: filter.user) {
                query.userId = user.id
            } else {
                throw PageFilterError("No account has the email or id “\(filter.user)”.")
            }
        }
        if !filter.event.isEmpty {
            guard let event = AuditEventName(rawValue: filter.event) else { throw PageFilterError("Unknown event “\(filter.event)”.") }
            query.event = event
        }
        query.since = try Self.time(filter.since, label: "From")
        query.until = try Self.time(filter.until, label: "To")
        return query
    }

    private static func time(_ text: String, label: String) throws -> Date? {
        guard !text.isEmpty else { return nil }
        let candidates = [text, text + "Z", text + ":00Z"]
        for candidate in candidates {
            if let date = try? Date(candidate, strategy: .iso8601) { return date }
        }
        throw PageFilterError("\(label) is not a time like 2026-11-23T10:05.")
    }

    /// `/admin?…` with the non-empty parameters, percent-encoded.
    private static func link(_ parameters: [String: String]) -> String {
        var components = URLComponents()
        components.path = "/admin"
        components.queryItems = parameters.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        return components.string ?? "/admin"
    }
}

struct PageFilterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    var nilIfEmpty: String? { self.isEmpty ? nil : self }
}
