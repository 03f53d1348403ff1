import Foundation

/// How access and refresh tokens are issued and checked.
public struct TokenSettings: Sendable {
    /// The `iss` claim written and required.
    public var issuer: String
    /// The `aud` claim written and required.
    public var audience: String
    /// Lifetime of an access token.
    public var accessTokenTTL: Duration
    /// Lifetime of a session and its refresh token.
    public var refreshTokenTTL: Duration
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; at most 60 seconds.
    public var leeway: Duration
    /// How long after a refresh token was spent the same client may present it again and be handed the same
    /// successor (a retry whose answer was lost, two tabs at once) instead of having its session revoked as a
    /// replay; zero makes every second presentation a reuse.
    public var refreshReuseInterval: Duration
    /// How many days a personal API token lives when its maker names no lifetime (`TOKEN_EXPIRY_DAYS`, default 10).
    public var apiTokenDays = 10

    public init(
        issuer: String = "tessera", audience: String = "tessera", accessTokenTTL: Duration = .seconds(900),
        refreshTokenTTL: Duration = .seconds(30 * 86_400), leeway: Duration = .seconds(30), refreshReuseInterval: Duration = .seconds(10)
    ) {
        self.issuer = issuer
        self.audience = audience
        self.accessTokenTTL = accessTokenTTL
        self.refreshTokenTTL = refreshTokenTTL
        self.leeway = min(leeway, .seconds(60))
        self.refreshReuseInterval = refreshReuseInterval
    }

    /// When every access token issued up to `date` has expired, leeway included.
    public func accessTokensIssued(before date: Date) -> Date {
        date.addingTimeInterval(self.accessTokenTTL.timeInterval + self.leeway.timeInterval)
    }
}

extension Duration {
    /// The duration in seconds as a `TimeInterval`.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = self.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
