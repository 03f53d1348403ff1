import Foundation
import Logging
import TesseraCore
import TesseraStore

/// Everything the service is told at start, from environment variables and `serve` flags, validated once.
public struct Configuration: Sendable {
    /// `development` (the default) or `production` (strict checks).
    public enum Mode: String, Sendable {
        case development
        case production
    }

    public var host: String
    public var port: Int
    public var database: DatabaseURL
    /// The HS256 secret; nil means "development: use or create the one kept beside the database". It also signs
    /// the web pages' cookies, whatever the token algorithm.
    public var jwtSecret: String?
    /// How access tokens are signed (`JWT_ALGORITHM`: `HS256`, the default, `EdDSA` or `ES256`).
    public var jwtAlgorithm: SigningAlgorithm = .hs256
    /// HS256 secrets that still verify (`JWT_PREVIOUS_SECRETS`, comma-separated) after `JWT_SECRET` changed.
    public var jwtPreviousSecrets: [String] = []
    /// Secrets that seal the private signing keys in the database (`TESSERA_KEY_ENCRYPTION_KEY`, comma-separated,
    /// newest first); required in production with an asymmetric algorithm.
    public var keyEncryptionKeys: [String] = []
    /// How often a new signing key is rotated in (`TESSERA_KEY_ROTATION`); nil only when told.
    public var keyRotation: Duration?
    /// How long a new key is published before it signs (`TESSERA_KEY_PUBLICATION`, default 10 minutes); the JWKS
    /// `max-age` is half of it (at most 5 minutes), so that every cache holds a key before it signs.
    public var keyPublication: Duration = .seconds(600)
    /// The least time between two answers of the revocation feed to one follower under a stream of revocations
    /// (`TESSERA_FEED_BATCH`, default 100 ms, 10 ms to 1 s): what bounds a thousand followers' requests.
    public var feedBatchInterval: Duration = .milliseconds(100)
    public var tokens: TokenSettings
    public var apiTokenExpiryDays: Int
    /// Audit rows older than this many days are deleted in the background; nil keeps them forever.
    public var auditRetentionDays: Int?
    public var mode: Mode
    public var bcryptCost: UInt8
    public var logLevel: Logger.Level
    /// How often the log follower polls the revocation log.
    public var followInterval: Duration
    /// How long the index may go without reading the log before protected routes answer 503.
    public var stalenessBound: Duration
    /// Whether anyone may create an account (`TESSERA_REGISTRATION=open`, the default) or only administrators (`closed`).
    public var registrationOpen: Bool
    /// How long a connection may take to send a whole request head, or sit idle between requests, before it is
    /// closed (`TESSERA_REQUEST_TIMEOUT`, default 30 s).
    public var requestTimeout: Duration = .seconds(30)
    /// The most connections one instance opens to PostgreSQL (`DATABASE_POOL_SIZE`, default 10), besides the one
    /// that listens for revocations. Unused with SQLite.
    public var databasePoolSize = 10
    /// Proxies whose `Forwarded` / `X-Forwarded-For` are believed (`TESSERA_TRUSTED_PROXIES`); none by default.
    public var trustedProxies: TrustedProxies = .none
    /// The bearer token that may read `/metrics` on the main port (`TESSERA_METRICS_TOKEN`, at least 16
    /// characters); without one the main port has no `/metrics`.
    public var metricsToken: String?
    /// A port of its own for `/metrics` (`TESSERA_METRICS_PORT`, `serve --metrics-port`), bound to
    /// `metricsHost` (`TESSERA_METRICS_HOST`, loopback by default); nil serves none.
    public var metricsPort: Int?
    public var metricsHost = "127.0.0.1"
    /// How log lines are written (`LOG_FORMAT`): `text` for people, `json` (one object per line) for machines.
    public var logFormat: LogFormat = .text
    /// Whether each answered request gets a `request` line at `info` (`TESSERA_ACCESS_LOG`, `on` by default): off
    /// where a proxy in front logs requests already, and one line per request is a cost not worth paying twice.
    public var accessLog = true

    /// The shape of a log line.
    public enum LogFormat: String, Sendable {
        case text
        case json
    }

    /// The least length of `TESSERA_METRICS_TOKEN`: a short one could be guessed by a scraper of the main port.
    public static let minimumMetricsTokenLength = 16

    public init(
        host: String = "127.0.0.1", port: Int = 8080, database: DatabaseURL = .default, jwtSecret: String? = nil,
        tokens: TokenSettings = TokenSettings(), apiTokenExpiryDays: Int = 10, mode: Mode = .development, bcryptCost: UInt8 = 12,
        logLevel: Logger.Level = .info, followInterval: Duration = .milliseconds(200), stalenessBound: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.jwtSecret = jwtSecret
        self.tokens = tokens
        self.apiTokenExpiryDays = apiTokenExpiryDays
        self.tokens.apiTokenDays = apiTokenExpiryDays
        self.mode = mode
        self.bcryptCost = bcryptCost
        self.logLevel = logLevel
        self.followInterval = followInterval
        self.stalenessBound = stalenessBound
        self.registrationOpen = true
    }

    /// Reads the environment (`TESSERA_HOST`, `TESSERA_PORT`, `DATABASE_URL`, `DATABASE_POOL_SIZE`, `JWT_SECRET`, `JWT_ALGORITHM`, `JWT_PREVIOUS_SECRETS`,
    /// `TESSERA_KEY_ENCRYPTION_KEY`, `TESSERA_KEY_ROTATION`, `TESSERA_KEY_PUBLICATION`, `TESSERA_FEED_BATCH`, `JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `ACCESS_TOKEN_TTL`, `REFRESH_TOKEN_TTL`, `TESSERA_REFRESH_REUSE_INTERVAL`, `TOKEN_EXPIRY_DAYS`, `AUDIT_RETENTION_DAYS`, `TESSERA_ENV`, `TESSERA_REGISTRATION`, `TESSERA_TRUSTED_PROXIES`, `TESSERA_REQUEST_TIMEOUT`, `BCRYPT_COST`,
    /// `LOG_LEVEL`, `LOG_FORMAT`, `TESSERA_ACCESS_LOG`, `TESSERA_METRICS_TOKEN`, `TESSERA_METRICS_PORT`, `TESSERA_METRICS_HOST`).
    /// Throws a ``ConfigurationError`` that says which variable is wrong and why.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        var configuration = Configuration()
        if let mode = value("TESSERA_ENV") {
            guard let parsed = Mode(rawValue: mode.lowercased()) else {
                throw ConfigurationError("TESSERA_ENV must be 'development' or 'production', not '\(mode)'")
            }
            configuration.mode = parsed
        }
        if let host = value("TESSERA_HOST") { configuration.host = host }
        if let port = value("TESSERA_PORT") { configuration.port = try parsePort(port, name: "TESSERA_PORT") }
        if let url = value("DATABASE_URL") {
            do { configuration.database = try DatabaseURL(parsing: url) } catch { throw ConfigurationError("\(error)") }
        }
        if let size = value("DATABASE_POOL_SIZE") {
            guard let parsed = Int(size), (2...1000).contains(parsed) else {
                throw ConfigurationError("DATABASE_POOL_SIZE must be a whole number of connections from 2 to 1000, not '\(size)'")
            }
            configuration.databasePoolSize = parsed
        }
        configuration.jwtSecret = environment["JWT_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
        if let algorithm = value("JWT_ALGORITHM") {
            guard let parsed = SigningAlgorithm.allCases.first(where: { $0.rawValue.lowercased() == algorithm.lowercased() }) else {
                throw ConfigurationError("JWT_ALGORITHM must be HS256, EdDSA or ES256, not '\(algorithm)'")
            }
            configuration.jwtAlgorithm = parsed
        }
        configuration.jwtPreviousSecrets = Self.list(environment["JWT_PREVIOUS_SECRETS"])
        configuration.keyEncryptionKeys = Self.list(environment["TESSERA_KEY_ENCRYPTION_KEY"])
        if let rotation = value("TESSERA_KEY_ROTATION") { configuration.keyRotation = try parseDuration(rotation, name: "TESSERA_KEY_ROTATION") }
        if let batch = value("TESSERA_FEED_BATCH") {
            configuration.feedBatchInterval = try parseDuration(batch, name: "TESSERA_FEED_BATCH")
        }
        if let publication = value("TESSERA_KEY_PUBLICATION") {
            configuration.keyPublication = try parseDuration(publication, name: "TESSERA_KEY_PUBLICATION")
        }
        if let issuer = value("JWT_ISSUER") { configuration.tokens.issuer = issuer }
        if let audience = value("JWT_AUDIENCE") { configuration.tokens.audience = audience }
        if let ttl = value("ACCESS_TOKEN_TTL") { configuration.tokens.accessTokenTTL = try parseDuration(ttl, name: "ACCESS_TOKEN_TTL") }
        if let ttl = value("REFRESH_TOKEN_TTL") { configuration.tokens.refreshTokenTTL = try parseDuration(ttl, name: "REFRESH_TOKEN_TTL") }
        if let interval = value("TESSERA_REFRESH_REUSE_INTERVAL") {
            // `0` turns the retry grace off: every second presentation of a refresh token is then a reuse.
            let digits = interval.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "ms"))
            let zero = !digits.isEmpty && digits.allSatisfy { $0 == "0" }
            configuration.tokens.refreshReuseInterval = zero ? .zero : try parseDuration(interval, name: "TESSERA_REFRESH_REUSE_INTERVAL")
        }
        if let days = value("TOKEN_EXPIRY_DAYS") {
            guard let parsed = Int(days), parsed > 0, parsed <= 365 else {
                throw ConfigurationError("TOKEN_EXPIRY_DAYS must be a whole number of days from 1 to 365, not '\(days)'")
            }
            configuration.apiTokenExpiryDays = parsed
            configuration.tokens.apiTokenDays = parsed
        }
        if let days = value("AUDIT_RETENTION_DAYS") {
            guard let parsed = Int(days), parsed > 0 else {
                throw ConfigurationError("AUDIT_RETENTION_DAYS must be a whole number of days above 0 (unset keeps audit rows forever), not '\(days)'")
            }
            configuration.auditRetentionDays = parsed
        }
        if let registration = value("TESSERA_REGISTRATION") {
            switch registration.lowercased() {
            case "open": configuration.registrationOpen = true
            case "closed": configuration.registrationOpen = false
            default: throw ConfigurationError("TESSERA_REGISTRATION must be 'open' or 'closed', not '\(registration)'")
            }
        }
        if let timeout = value("TESSERA_REQUEST_TIMEOUT") {
            configuration.requestTimeout = try parseDuration(timeout, name: "TESSERA_REQUEST_TIMEOUT")
        }
        if let proxies = value("TESSERA_TRUSTED_PROXIES") { configuration.trustedProxies = try TrustedProxies(parsing: proxies) }
        if let cost = value("BCRYPT_COST") {
            guard let parsed = UInt8(cost), (4...31).contains(parsed) else { throw ConfigurationError("BCRYPT_COST must be from 4 to 31, not '\(cost)'") }
            configuration.bcryptCost = parsed
        }
        configuration.metricsToken = environment["TESSERA_METRICS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let port = value("TESSERA_METRICS_PORT") { configuration.metricsPort = try parsePort(port, name: "TESSERA_METRICS_PORT") }
        if let host = value("TESSERA_METRICS_HOST") { configuration.metricsHost = host }
        if let access = value("TESSERA_ACCESS_LOG") {
            switch access.lowercased() {
            case "on", "true", "1": configuration.accessLog = true
            case "off", "false", "0": configuration.accessLog = false
            default: throw ConfigurationError("TESSERA_ACCESS_LOG must be 'on' or 'off', not '\(access)'")
            }
        }
        if let format = value("LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: format.lowercased()) else { throw ConfigurationError("LOG_FORMAT must be 'text' or 'json', not '\(format)'") }
            configuration.logFormat = parsed
        }
        if let level = value("LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical")
            }
            configuration.logLevel = parsed
        }
        try configuration.validate()
        return configuration
    }

    /// Checks the rules that hold whatever the source: lifetimes in range, secret length, production strictness.
    public func validate() throws {
        if self.tokens.accessTokenTTL < .seconds(10) || self.tokens.accessTokenTTL > .seconds(86_400) {
            throw ConfigurationError("ACCESS_TOKEN_TTL must be between 10 seconds and 1 day")
        }
        if self.tokens.refreshTokenTTL < self.tokens.accessTokenTTL {
            throw ConfigurationError("REFRESH_TOKEN_TTL must not be shorter than ACCESS_TOKEN_TTL")
        }
        // A spent refresh token is a retry, not a theft, only for this long: longer would hand a thief the successor.
        if self.tokens.refreshReuseInterval < .zero || self.tokens.refreshReuseInterval > .seconds(60) {
            throw ConfigurationError("TESSERA_REFRESH_REUSE_INTERVAL must be from 0 (off) to 60s")
        }
        if let secret = self.jwtSecret, secret.utf8.count < SigningKey.minimumSecretLength {
            throw ConfigurationError("JWT_SECRET must be at least \(SigningKey.minimumSecretLength) bytes; it has \(secret.utf8.count)")
        }
        for secret in self.jwtPreviousSecrets where secret.utf8.count < SigningKey.minimumSecretLength {
            throw ConfigurationError("each of JWT_PREVIOUS_SECRETS must be at least \(SigningKey.minimumSecretLength) bytes; one has \(secret.utf8.count)")
        }
        for secret in self.keyEncryptionKeys where secret.utf8.count < KeyEncryption.minimumSecretLength {
            throw ConfigurationError(
                "each of TESSERA_KEY_ENCRYPTION_KEY must be at least \(KeyEncryption.minimumSecretLength) bytes; one has \(secret.utf8.count)"
            )
        }
        if let token = self.metricsToken, token.count < Self.minimumMetricsTokenLength {
            throw ConfigurationError("TESSERA_METRICS_TOKEN must be at least \(Self.minimumMetricsTokenLength) characters; it has \(token.count)")
        }
        // What a bearer header can carry (RFC 6750): a token with a space or beyond ASCII could never be presented.
        if let token = self.metricsToken, !token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw ConfigurationError("TESSERA_METRICS_TOKEN must be visible ASCII characters, without spaces")
        }
        // What a follower knows is as old as the last publication: a longer interval would eat the staleness bound.
        if self.feedBatchInterval < .milliseconds(10) || self.feedBatchInterval > .seconds(1) {
            throw ConfigurationError("TESSERA_FEED_BATCH must be from 10ms to 1s")
        }
        if self.keyPublication < .seconds(2) || self.keyPublication > .seconds(86_400) {
            throw ConfigurationError("TESSERA_KEY_PUBLICATION must be from 2 seconds to 1 day")
        }
        if let rotation = self.keyRotation, rotation < .seconds(86_400) {
            throw ConfigurationError("TESSERA_KEY_ROTATION must be at least 1d: a key is published for 10 minutes before it signs, and verifies its tokens for their lifetime after")
        }
        if self.mode == .production {
            if self.jwtAlgorithm.isAsymmetric && self.keyEncryptionKeys.isEmpty {
                throw ConfigurationError(
                    "TESSERA_KEY_ENCRYPTION_KEY is not set; with JWT_ALGORITHM=\(self.jwtAlgorithm.rawValue) TESSERA_ENV=production refuses to keep private keys unsealed by a key of their own (at least 32 random bytes)"
                )
            }
            if self.jwtSecret == nil {
                throw ConfigurationError("JWT_SECRET is not set; TESSERA_ENV=production refuses to start without one (at least 32 random bytes)")
            }
            if self.bcryptCost < BcryptPasswordHasher.minimumProductionCost {
                throw ConfigurationError("BCRYPT_COST must be at least \(BcryptPasswordHasher.minimumProductionCost) in production")
            }
        }
    }

    /// Parses `900`, `45s`, `15m`, `1h`, `30d` into a duration.
    public static func parseDuration(_ text: String, name: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.hasSuffix("ms") {
            guard let amount = Int64(trimmed.dropLast(2)), amount > 0, amount <= 86_400_000 else {
                throw ConfigurationError("\(name) must be a positive duration such as 100ms, 2s or 15m, not '\(text)'")
            }
            return .milliseconds(amount)
        }
        let units: [(String, Int64)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var multiplier: Int64 = 1
        var digits = Substring(trimmed)
        if let (suffix, factor) = units.first(where: { trimmed.hasSuffix($0.0) }) {
            multiplier = factor
            digits = digits.dropLast(suffix.count)
        }
        guard let amount = Int64(digits), amount > 0, amount <= 10 * 365 * 86_400 / multiplier else {
            throw ConfigurationError("\(name) must be a positive duration such as 900, 15m, 1h or 30d, not '\(text)'")
        }
        return .seconds(amount * multiplier)
    }

    /// A comma-separated list, blanks dropped.
    static func list(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func parsePort(_ text: String, name: String) throws -> Int {
        guard let port = Int(text), (0...65_535).contains(port) else { throw ConfigurationError("\(name) must be a port from 0 to 65535, not '\(text)'") }
        return port
    }
}

/// A setting that cannot be used, with a message that says which and why.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
