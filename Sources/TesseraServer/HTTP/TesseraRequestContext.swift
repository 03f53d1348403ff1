import Foundation
import Hummingbird
import Logging
import NIOCore
import TesseraCore

/// The request context of every route: the verified caller (set by ``AuthenticationMiddleware`` only) and the
/// peer address.
public struct TesseraRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The verified, unrevoked access token of the caller; nil on public routes.
    public var identity: VerifiedAccessToken? {
        didSet { self.caller.userId = self.identity?.userId }
    }
    /// Whether `identity` came from a personal API token rather than an access token.
    public var viaAPIToken = false
    /// Who the caller is, for the access log line written outside the middleware that found out.
    let caller = RequestCaller()
    /// The CSRF token the page forms of a signed-in browser carry (set by the pages' session middleware only).
    var csrfToken: String?
    /// The peer's IP address, when the transport knows it.
    public let remoteIP: String?
    /// The client's address: the peer's, or what a trusted proxy says (set by ``ClientAddressMiddleware``).
    public var clientAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.identity = nil
        self.csrfToken = nil
        self.remoteIP = source.channel.remoteAddress?.ipAddress
        self.clientAddress = self.remoteIP
    }

    /// JSON bodies are small; anything larger is refused with 413 before it is read whole.
    public var maxUploadSize: Int { 64 * 1024 }

    /// Answers are JSON with slashes left as they are (user agents, media types).
    public var responseEncoder: JSONEncoder { Self.encoder }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return encoder
    }()

    /// The caller, on routes behind ``AuthenticationMiddleware``.
    public func requireIdentity() throws -> VerifiedAccessToken {
        guard let identity else { throw AuthError.invalidToken(reason: "route reached without authentication") }
        return identity
    }
}
