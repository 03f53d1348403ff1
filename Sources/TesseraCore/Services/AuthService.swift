import Foundation
import Logging
import TesseraTokens

/// The account and session rules: registration, sign-in, refresh, and checking a bearer token.
///
/// Revocations live in `AuthService+Revocation.swift`. Every write goes through the ``AuthStore`` in one
/// transaction; every revocation is applied to the local ``RevocationIndex`` before the call returns.
public struct AuthService: Sendable {
    public let store: any AuthStore
    public let index: RevocationIndex
    public let hasher: any PasswordHasher
    public let settings: TokenSettings
    public let clock: any WallClock
    public let throttle: LoginThrottle
    /// The keys tokens are signed and verified with.
    public let keys: KeyRing
    let signer: AccessTokenSigner
    let verifier: AccessTokenVerifier
    /// A hash of a random password at the same cost, checked when the email is unknown so both cases cost the same.
    let decoyHash: String
    /// What is checked in place of a password that could never have been set (never the decoy hash's password).
    let decoyPassword = OpaqueToken.generate()
    /// Accounts' usernames for introspection.
    let usernames = UsernameCache()
    /// API tokens seen on this instance, and their last use not yet written.
    public let apiTokenCache = APITokenCache()
    /// Derives each refresh token's successor, so that a retry gets the same one (``refresh(refreshToken:clientNonce:origin:)``).
    let refreshSuccessor: RefreshSuccessor
    /// Token checks, sign-ins and revocations, counted (``ServiceMetrics``).
    public let metrics: ServiceMetrics
    let logger: Logger

    /// Builds the service; hashes a decoy password once, which takes one bcrypt round.
    public init(
        store: any AuthStore, index: RevocationIndex, hasher: any PasswordHasher, key: SigningKey, settings: TokenSettings,
        clock: any WallClock = SystemWallClock(), throttle: LoginThrottle = LoginThrottle(), logger: Logger = Logger(label: "tessera.auth")
    ) async throws {
        try await self.init(
            store: store, index: index, hasher: hasher, keys: KeyRing(key: key), settings: settings, clock: clock, throttle: throttle, logger: logger
        )
    }

    /// Builds the service on a key ring that the key manager keeps up to date.
    public init(
        store: any AuthStore, index: RevocationIndex, hasher: any PasswordHasher, keys: KeyRing, settings: TokenSettings,
        clock: any WallClock = SystemWallClock(), throttle: LoginThrottle = LoginThrottle(), logger: Logger = Logger(label: "tessera.auth")
    ) async throws {
        self.keys = keys
        self.store = store
        self.index = index
        self.hasher = hasher
        self.settings = settings
        self.clock = clock
        self.throttle = throttle
        self.signer = AccessTokenSigner(keys: keys, settings: settings)
        self.verifier = AccessTokenVerifier(keys: keys, settings: settings)
        self.decoyHash = try await hasher.hash(OpaqueToken.generate())
        self.refreshSuccessor = RefreshSuccessor(readSecret: { try await store.refreshSuccessorSecret() })
        self.metrics = ServiceMetrics()
        self.logger = logger
    }

    // MARK: Accounts

    /// Creates an account after checking the email and password rules.
    public func register(email: String, password: String, role: Role = .user, actorId: UUID? = nil, origin: RequestOrigin) async throws -> User {
        let address = try Credentials.validate(email: email)
        try Credentials.validate(password: password)
        let now = self.clock.now()
        let newUser = NewUser(
            email: address.preserved,
            normalizedEmail: address.normalized,
            passwordHash: try await self.hasher.hash(password),
            role: role,
            createdAt: now
        )
        let audit = AuditRecord(
            at: now, event: .userRegistered, actorId: actorId ?? newUser.id, subjectId: newUser.id, origin: origin,
            details: ["role": role.rawValue]
        )
        let user = try await self.store.createUser(newUser, audit: audit)
        self.logger.info("user registered", metadata: ["user": "\(user.id.lowercasedString)"])
        return user
    }

    /// The account of a verified token.
    public func me(_ caller: VerifiedAccessToken) async throws -> User {
        guard let user = try await self.store.user(id: caller.userId) else { throw AuthError.userNotFound }
        return user
    }

    // MARK: Sign-in and refresh

    /// Signs in: checks the throttle, the password (in constant cost whether or not the email exists) and the
    /// account's state, then opens a session and issues a token pair.
    ///
    /// - Parameter trustedDevice: the id of a device cookie the server verified for this account: a browser that
    ///   signed in to it before, exempt from the limits an attacker elsewhere can drive up (``LoginThrottle``).
    public func login(email: String, password: String, origin: RequestOrigin, trustedDevice: String? = nil) async throws -> TokenPair {
        do {
            let pair = try await self.checkedLogin(email: email, password: password, origin: origin, trustedDevice: trustedDevice)
            self.metrics.countSignIn(.ok)
            return pair
        } catch let error as AuthError {
            switch error {
            case .invalidCredentials: self.metrics.countSignIn(.badPassword)
            case .tooManyAttempts: self.metrics.countSignIn(.throttled)
            case .accountInactive: self.metrics.countSignIn(.inactive)
            case .busy: self.metrics.countSignIn(.busy)
            default: break
            }
            throw error
        }
    }

    private func checkedLogin(email: String, password: String, origin: RequestOrigin, trustedDevice: String?) async throws -> TokenPair {
        let address = Credentials.normalize(email: email)
        let normalized = address ?? email.lowercased()
        let now = self.clock.now()
        let attempt = LoginThrottle.Attempt(account: normalized, address: origin.ip, trustedDevice: trustedDevice)
        try await self.throttle.admit(attempt, now: now)

        var credentials: UserCredentials?
        if let address { credentials = try await self.store.credentials(normalizedEmail: address) }
        let passwordMatches = try await self.checkPassword(password, against: credentials?.passwordHash)
        guard let credentials, passwordMatches else {
            try await self.throttle.recordFailure(attempt, now: now)
            try await self.store.recordAudit(
                AuditRecord(
                    at: now, event: .authLoginFailed, subjectId: credentials?.user.id, origin: origin,
                    details: ["reason": credentials == nil ? "unknown_email" : "wrong_password", "email": normalized]
                )
            )
            throw AuthError.invalidCredentials
        }
        guard credentials.user.isActive else {
            try await self.store.recordAudit(
                AuditRecord(
                    at: now, event: .authLoginFailed, subjectId: credentials.user.id, origin: origin,
                    details: ["reason": "account_inactive", "email": normalized]
                )
            )
            throw AuthError.accountInactive
        }
        try await self.throttle.recordSuccess(attempt)
        try await self.ensureSigningKey(now: now)

        let refreshToken = OpaqueToken.generate()
        let session = NewSession(
            userId: credentials.user.id,
            refreshTokenHash: OpaqueToken.hash(refreshToken),
            createdAt: now,
            expiresAt: now.addingTimeInterval(self.settings.refreshTokenTTL.timeInterval),
            origin: origin
        )
        let audit = AuditRecord(
            at: now, event: .authLogin, actorId: credentials.user.id, subjectId: credentials.user.id, sessionId: session.id, origin: origin,
            details: origin.deviceName.map { ["deviceName": $0] } ?? [:]
        )
        let grant = try await self.store.openSession(session, audit: audit)
        self.logger.info("signed in", metadata: ["user": "\(grant.user.id.lowercasedString)", "session": "\(grant.session.id.lowercasedString)"])
        return try await self.issuePair(for: grant, refreshToken: refreshToken, now: now)
    }

    /// Spends a refresh token for a new pair.
    ///
    /// The same token presented again by the same client (same session, user agent and `clientNonce`) within
    /// ``TokenSettings/refreshReuseInterval`` of being spent, while its successor is unused, is answered with the same
    /// successor and a new access token: a phone that lost the answer and retried, or two tabs at once, must not be
    /// signed out. Presented again in any other way — later, by another client, or after the successor was used — it
    /// is theft: its whole session is revoked and audited, and the call fails like any invalid token.
    ///
    /// - Parameter clientNonce: a value the client chose for this refresh (at most ``maximumClientNonceLength``
    ///   characters); when given, only a presentation with the same nonce counts as its retry.
    public func refresh(refreshToken: String, clientNonce: String? = nil, origin: RequestOrigin) async throws -> TokenPair {
        // Counted in Unicode scalars, as JSON Schema's `maxLength` counts (openapi.yaml).
        if let clientNonce, clientNonce.isEmpty || clientNonce.unicodeScalars.count > Self.maximumClientNonceLength {
            throw AuthError.invalidArgument("clientNonce must be 1 to \(Self.maximumClientNonceLength) characters")
        }
        guard OpaqueToken.isWellFormed(refreshToken) else { throw AuthError.invalidRefreshToken }
        let now = self.clock.now()
        // Before the rotation commits: a pair that cannot be signed must not spend the refresh token (the client
        // would retry with it, and a spent token presented again may revoke the whole session).
        try await self.ensureSigningKey(now: now)
        let successor = try await self.refreshSuccessor.successor(of: refreshToken)
        let rotation = RefreshRotation(
            presentedHash: OpaqueToken.hash(refreshToken),
            successorHash: OpaqueToken.hash(successor),
            now: now,
            origin: origin,
            reuseRevocationUntil: self.settings.accessTokensIssued(before: now),
            client: RefreshRotation.Client(userAgent: origin.userAgent, nonce: clientNonce),
            reuseInterval: self.settings.refreshReuseInterval
        )
        let outcome = try await self.store.rotateRefreshToken(rotation)
        if case .retried(let grant) = outcome {
            self.logger.debug(
                "refresh retried within the reuse interval: the same successor again", metadata: ["session": "\(grant.session.id.lowercasedString)"]
            )
        }
        switch outcome {
        case .rotated(let grant), .retried(let grant):
            let session = grant.session
            guard self.index.isSessionAccepted(sessionId: session.id, userId: session.userId, version: session.tokenVersion, epoch: session.epoch)
            else { throw AuthError.invalidRefreshToken }
            return try await self.issuePair(for: grant, refreshToken: successor, now: now)
        case .reused(let outcome):
            self.index.apply(outcome.entries, now: now)
            self.metrics.countRevocations(outcome.entries)
            self.logger.warning(
                "refresh token reuse: session revoked",
                metadata: ["rows": "\(outcome.entries.count)", "seq": "\(outcome.entries.first.map { String($0.seq) } ?? "-")"]
            )
            throw AuthError.invalidRefreshToken
        case .invalid:
            throw AuthError.invalidRefreshToken
        }
    }

    /// The longest `clientNonce` a refresh accepts: enough for any random value a client would choose.
    public static let maximumClientNonceLength = 256

    /// Checks a password against a hash (the decoy's when there is no account) at bcrypt's full cost. A password
    /// that could never have been set — with NUL, over 72 bytes, too short — is refused without being handed to
    /// bcrypt, which would check a cut-short value, yet after the same work, so that timing tells nothing.
    func checkPassword(_ password: String, against hash: String?) async throws -> Bool {
        let settable = Credentials.couldHaveBeenSet(password: password)
        let matches = try await self.hasher.verify(settable ? password : self.decoyPassword, against: hash ?? self.decoyHash)
        return settable && matches && hash != nil
    }

    /// Makes sure a token can be signed now, before anything is written: the key that signs must be here whole and
    /// not revoked. A key revoked on another instance is refused here the moment its row arrives, while this
    /// instance's ring may not have heard yet that a new key replaced it: the keys are read again first. Never sign a
    /// token that would be refused on arrival, and never commit a sign-in or refresh whose pair cannot be signed.
    func ensureSigningKey(now: Date) async throws {
        func usable() -> Bool {
            let key = self.keys.snapshot.signingKey(at: now)
            return key.canSign && !self.index.isKeyRevoked(key.kid)
        }
        if usable() { return }
        do {
            try await self.keys.reload()
        } catch {
            throw StoreUnavailable("the signing keys could not be read again: \(error)")
        }
        guard usable() else { throw StoreUnavailable("no signing key can sign here now (revoked, or its private half cannot be opened)") }
    }

    func issuePair(for grant: SessionGrant, refreshToken: String, now: Date) async throws -> TokenPair {
        try await self.ensureSigningKey(now: now)
        let (accessToken, claims) = try await self.signer.sign(user: grant.user, session: grant.session, now: now)
        return TokenPair(
            accessToken: accessToken,
            refreshToken: refreshToken,
            expiresIn: Int(self.settings.accessTokenTTL.components.seconds),
            sessionId: grant.session.id,
            user: grant.user,
            claims: claims
        )
    }

    // MARK: Checking a bearer token

    /// Verifies an access token and checks it against the revocation index; fails closed when the index is stale.
    ///
    /// Synchronous: it reads memory only (the verified-token cache and the index), never the database.
    public func authenticate(accessToken: String) throws(AuthError) -> VerifiedAccessToken {
        let token: VerifiedAccessToken
        do {
            token = try self.verifier.verify(accessToken, now: self.clock.now())
        } catch {
            self.countInvalid(error)
            throw error
        }
        return try self.judge(token)
    }

    /// ``authenticate(accessToken:)`` for a token given as its bytes where they lie: a token seen before is
    /// checked without allocating.
    public func authenticate(accessTokenBytes: UnsafeBufferPointer<UInt8>) throws(AuthError) -> VerifiedAccessToken {
        let token: VerifiedAccessToken
        do {
            token = try self.verifier.verify(bytes: accessTokenBytes, now: self.clock.now())
        } catch {
            self.countInvalid(error)
            throw error
        }
        return try self.judge(token)
    }

    private func judge(_ token: VerifiedAccessToken) throws(AuthError) -> VerifiedAccessToken {
        switch self.index.verdict(for: token) {
        case .accepted:
            self.metrics.tokenChecks.countAccepted()
            return token
        case .revoked:
            // Which cut it was is asked only now: an accepted token pays for none of it.
            self.metrics.tokenChecks.countRevoked(by: self.index.cuts(of: token).first)
            throw .tokenRevoked
        case .stale:
            self.metrics.tokenChecks.countStale()
            throw .revocationIndexStale
        }
    }

    private func countInvalid(_ error: AuthError) {
        if case .invalidToken(let reason) = error { self.metrics.tokenChecks.countInvalid(reason: reason) }
    }

    /// The caller's live sessions, newest activity first.
    public func sessions(of caller: VerifiedAccessToken) async throws -> [Session] {
        try await self.store.liveSessions(userId: caller.userId, now: self.clock.now())
    }
}
