import Foundation
import TesseraCore

/// The header of every signed-in page: who you are, "Sign out" and "Sign out of all devices".
struct PageHeader: Sendable {
    let email: String
    let isAdmin: Bool
    let csrf: String
    /// Which navigation link is the current page.
    let onAccount: Bool
    let onAdmin: Bool

    init(user: User, context: TesseraRequestContext, onAdmin: Bool) throws {
        guard let csrf = context.csrfToken else { throw AuthError.invalidToken(reason: "page reached without a browser session") }
        self.email = user.email
        self.isAdmin = user.role == .admin
        self.csrf = csrf
        self.onAccount = !onAdmin
        self.onAdmin = onAdmin
    }
}

/// How the pages show times, user agents and one-line notices.
enum PageFormat {
    /// `2026-11-23 10:05 UTC`.
    static func time(_ date: Date) -> String {
        let iso = date.ISO8601Format()
        return iso.prefix(16).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    /// A user agent in words: "Chrome on Linux", "Safari on iPhone", "curl".
    static func userAgent(_ header: String?) -> String {
        guard let header, !header.isEmpty else { return "Unknown client" }
        let browsers: [(marker: String, name: String)] = [
            ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("HeadlessChrome/", "Headless Chrome"), ("Chromium/", "Chromium"),
            ("CriOS/", "Chrome"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"), ("python-requests/", "Python requests"),
            ("Python-urllib/", "Python urllib"), ("Go-http-client/", "Go HTTP client"),
        ]
        let systems: [(marker: String, name: String)] = [
            ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"), ("CrOS", "ChromeOS"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"),
        ]
        let browser = browsers.first { header.contains($0.marker) }?.name
        let system = systems.first { header.contains($0.marker) }?.name
        switch (browser, system) {
        case (let browser?, let system?): return "\(browser) on \(system)"
        case (let browser?, nil): return browser
        case (nil, let system?): return "A browser on \(system)"
        case (nil, nil): return String(header.prefix(60))
        }
    }

    /// The one-line notices a redirect may ask a page to show, by code; unknown codes show nothing.
    static func notice(_ code: String?) -> String? {
        switch code {
        case "signed-out": "You signed out."
        case "signed-out-all": "You signed out of all devices."
        case "revoked": "You were signed out. Sign in again to continue."
        case "revoked-all": "Every session of every user was signed out, yours included."
        case "session-revoked": "That device was signed out."
        case "others-signed-out": "Every other device was signed out."
        case "password-changed": "Your password was changed; every other device was signed out."
        case "user-deactivated": "The account was deactivated and every session of it signed out."
        case "user-activated": "The account was activated. Its old sessions stay signed out."
        case "user-revoked": "Every session of that account was signed out."
        case "user-unrevoked": "The latest revoke of that account was undone."
        case "password-reset": "The password was reset and every session of that account signed out."
        case "own-account-deactivated": "You deactivated your own account: every session of it, this one included, was signed out."
        case "own-account-revoked": "Every session of your account was signed out, this one included."
        case "own-password-reset": "Your password was reset and every session of your account signed out, this one included."
        case "unrevoked-all": "The latest revoke-all was undone."
        case "account-deleted": "Your account was deleted: every device was signed out and your email and personal data were erased."
        case "user-deleted": "The account was deleted: every session of it was signed out and its personal data erased."
        case "role-changed": "The role was changed and every session of that account signed out; it signs in again with the new role."
        case "role-unchanged": "The account had that role already; nothing changed."
        case "own-role-changed": "Your role was changed and every session of your account signed out, this one included."
        default: nil
        }
    }
}
