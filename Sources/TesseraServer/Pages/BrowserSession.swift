import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import TesseraCore

/// How a browser holds a Tessera session: the token pair in two httpOnly cookies, and CSRF tokens derived from the
/// session (or, before sign-in, from a random nonce cookie) with a key of their own.
///
/// Pages never put a token in HTML or in a URL; the CSRF token is not a credential: it only proves that a form was
/// rendered by Tessera for this browser.
public struct BrowserSession: Sendable {
    static let accessCookie = "tessera_access"
    static let refreshCookie = "tessera_refresh"
    static let nonceCookie = "tessera_csrf"
    /// Marks a browser that signed in to an account before: exempt from the limits others can drive up.
    static let deviceCookie = "tessera_device"
    /// The form field and header that carry the CSRF token.
    static let csrfField = "csrf"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    /// Sent by the pages' script on every `fetch`; answers are then JSON instead of redirects and HTML.
    static let fetchHeader = HTTPField.Name("X-Tessera-Fetch")!

    /// `Secure` on every cookie (production: Tessera is behind TLS).
    let secureCookies: Bool
    let tokens: TokenSettings
    private let csrfKey: SymmetricKey
    private let deviceKey: SymmetricKey

    /// - Parameter secret: the signing secret; the CSRF key is derived from it with HKDF, so a CSRF token can never
    ///   be used as, or reveal anything about, a token signature.
    public init(secret: String, tokens: TokenSettings, secureCookies: Bool) {
        self.csrfKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), info: Data("tessera csrf v1".utf8), outputByteCount: 32
        )
        self.deviceKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), info: Data("tessera device cookie v1".utf8), outputByteCount: 32
        )
        self.tokens = tokens
        self.secureCookies = secureCookies
    }

    // MARK: Device cookies (OWASP "device cookies" against lock-out)

    /// A device cookie for an account (normalized address): a random id and an HMAC binding it to the account,
    /// kept for a year on the sign-in path only. `keeping` re-issues an id already verified.
    func deviceCookie(account: String, keeping id: String? = nil) -> Cookie {
        let id = id ?? OpaqueToken.generate()
        let mac = Base64URL.encode(HMAC<SHA256>.authenticationCode(for: Data("device|\(id)|\(account)".utf8), using: self.deviceKey))
        return Cookie(
            name: Self.deviceCookie, value: "\(id).\(mac)", maxAge: 365 * 86_400, path: "/login", secure: self.secureCookies, httpOnly: true,
            sameSite: .strict
        )
    }

    /// The id of a device cookie if it was issued for this account (checked in constant time), else nil.
    func trustedDevice(_ value: String?, account: String) -> String? {
        guard let value, value.utf8.count <= 200, let dot = value.firstIndex(of: ".") else { return nil }
        let id = String(value[..<dot])
        guard let mac = Base64URL.decode(value[value.index(after: dot)...]), mac.count == SHA256.byteCount else { return nil }
        let valid = HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data("device|\(id)|\(account)".utf8), using: self.deviceKey)
        return valid ? id : nil
    }

    // MARK: Cookies

    /// The two cookies that hold a freshly issued pair.
    func cookies(for pair: TokenPair) -> [Cookie] {
        [
            self.cookie(Self.accessCookie, pair.accessToken, maxAge: Int(self.tokens.accessTokenTTL.components.seconds)),
            self.cookie(Self.refreshCookie, pair.refreshToken, maxAge: Int(self.tokens.refreshTokenTTL.components.seconds)),
        ]
    }

    /// Cookies that make the browser forget its session.
    func clearedCookies() -> [Cookie] {
        [self.cookie(Self.accessCookie, "", maxAge: 0), self.cookie(Self.refreshCookie, "", maxAge: 0)]
    }

    /// A new random nonce for the sign-in and registration forms, kept for two hours.
    func newNonceCookie() -> Cookie {
        self.cookie(Self.nonceCookie, OpaqueToken.generate(), maxAge: 7200)
    }

    private func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: self.secureCookies, httpOnly: true, sameSite: .lax)
    }

    // MARK: CSRF

    /// What a CSRF token is bound to: the signed-in session, or the nonce cookie before sign-in.
    enum Binding: Sendable {
        case session(UUID)
        case nonce(String)

        var data: Data {
            switch self {
            case .session(let id): Data("session|\(id.lowercasedString)".utf8)
            case .nonce(let nonce): Data("nonce|\(nonce)".utf8)
            }
        }
    }

    /// The CSRF token for a binding: HMAC-SHA256 under the CSRF key, base64url.
    func csrfToken(for binding: Binding) -> String {
        Base64URL.encode(HMAC<SHA256>.authenticationCode(for: binding.data, using: self.csrfKey))
    }

    /// Checks a presented CSRF token in constant time.
    func isValid(csrfToken presented: String, for binding: Binding) -> Bool {
        guard let bytes = Base64URL.decode(presented[...]), bytes.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(bytes, authenticating: binding.data, using: self.csrfKey)
    }
}
