import TesseraTokens

/// How a guarded service reaches Tessera and what it accepts.
public struct TesseraGuardConfiguration: Sendable {
    /// Tessera's base URL, e.g. `https://sign-in.example.com` (any instance: the feed's cursor is the same on all).
    public var tesseraURL: String
    /// The `iss` every token must carry (Tessera's `JWT_ISSUER`).
    public var issuer: String
    /// The `aud` every token must carry (Tessera's `JWT_AUDIENCE`).
    public var audience: String
    /// A client registered with `tessera clients add NAME --feed`.
    public var clientId: String
    public var clientSecret: String
    /// How long the guard trusts what it knows without hearing from Tessera; after that every check is
    /// ``TesseraGuard/Decision/unavailable(retryAfterSeconds:)`` (fail closed). Default 5 s.
    public var stalenessBound: Duration
    /// The one algorithm accepted; nil takes the one algorithm Tessera's JWKS publishes at the first fetch (it never
    /// changes while the guard runs).
    public var algorithm: SigningAlgorithm?
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    public var leeway: Duration

    public init(
        tesseraURL: String, issuer: String, audience: String, clientId: String, clientSecret: String, stalenessBound: Duration = .seconds(5),
        algorithm: SigningAlgorithm? = nil, leeway: Duration = .seconds(30)
    ) {
        self.tesseraURL = tesseraURL.hasSuffix("/") ? String(tesseraURL.dropLast()) : tesseraURL
        self.issuer = issuer
        self.audience = audience
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.stalenessBound = stalenessBound
        self.algorithm = algorithm
        self.leeway = leeway
    }

    /// The long poll's `wait`: well under the bound, since freshness is counted from when an answer arrives.
    var feedWait: Duration { min(.seconds(2), self.stalenessBound / 4) }
}
