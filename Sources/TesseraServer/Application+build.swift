import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import TesseraCore
import TesseraStore

/// What ``buildApplication(configuration:logger:)`` hands back besides the app, for tests and the CLI.
public struct TesseraServices: Sendable {
    public let auth: AuthService
    /// The store the service reads and writes (the same one `auth` holds).
    public let store: SQLAuthStore
    public let follower: RevocationLogFollower
    /// Cookies and CSRF tokens of the web pages.
    public let browser: BrowserSession
    /// The signing keys: the ring the verifier reads, and their life cycle.
    public let keys: KeyManager
    /// The registered clients (introspection, revocation, feed).
    public let clients: ClientRegistry
    /// The threads that run bcrypt, apart from the event loops.
    let hashingThreads: NIOThreadPool

    /// Closes the database connections and stops the hashing threads.
    public func close() async {
        await self.store.database.close()
        try? await self.hashingThreads.shutdownGracefully()
    }
}

/// Opens the store and builds the services every front end (server, CLI) shares.
///
/// - Parameters:
///   - loadRevocationLog: read the whole log into the index before returning. A server must; a one-shot command
///     that only writes revocations need not, and skips reading a log of millions of rows on every run.
///   - createDatabase: make the database when it does not exist (the server); commands refuse a missing one.
public func buildServices(
    configuration: Configuration, logger: Logger, loadRevocationLog: Bool = true, createDatabase: Bool = true
) async throws -> TesseraServices {
    let store = try await StoreFactory.open(configuration.database, create: createDatabase, poolSize: configuration.databasePoolSize, logger: logger)
    do {
        return try await buildServices(on: store, configuration: configuration, logger: logger, loadRevocationLog: loadRevocationLog)
    } catch {
        // Connections are closed on the way out, as SQLite asks: a failed start leaves nothing open.
        await store.database.close()
        throw error
    }
}

private func buildServices(on store: SQLAuthStore, configuration: Configuration, logger: Logger, loadRevocationLog: Bool) async throws -> TesseraServices {
    let secret = try SecretResolver.resolve(configuration, logger: logger)
    // A user's cut-off is kept while a token or session issued before it could still be presented.
    let cutoffLifetime = configuration.tokens.refreshTokenTTL + configuration.tokens.accessTokenTTL + Housekeeping.revocationGrace
    let index = RevocationIndex(stalenessBound: configuration.stalenessBound, cutoffLifetime: cutoffLifetime)
    let follower = RevocationLogFollower(
        store: store, index: index, interval: configuration.followInterval, feed: RevocationFeed(batchInterval: configuration.feedBatchInterval), logger: logger
    )
    // The whole log is applied before the first request is answered; it is read while the decoy password is hashed.
    async let caughtUp: (rows: Int, took: Duration)? = {
        guard loadRevocationLog else { return nil }
        let started = ContinuousClock.now
        let rows = try await follower.catchUp()
        return (rows, ContinuousClock.now - started)
    }()
    // bcrypt runs on threads of its own, one fewer than the cores, so that a sign-in storm leaves a core to the
    // event loops and token checks stay fast; the queue in front of them is bounded by what they hash in a second.
    let threads = max(1, System.coreCount - 1)
    let pool = NIOThreadPool(numberOfThreads: threads)
    pool.start()
    do {
        let bcrypt = BcryptPasswordHasher(cost: configuration.bcryptCost, threadPool: pool, yieldsToRequests: true)
        // Its capacity is calibrated from the decoy password AuthService hashes at start: no hash of its own.
        let hasher = BoundedPasswordHasher(base: bcrypt, threads: threads)
        let keys = try await KeyManager(
            store: store, index: index, schedule: keySchedule(configuration), source: try keySource(configuration, developmentSecret: secret), logger: logger
        )
        let clients = try await ClientRegistry(store: store)
        let auth = try await AuthService(
            store: store,
            index: index,
            hasher: hasher,
            keys: keys.ring,
            settings: configuration.tokens,
            throttle: LoginThrottle(counter: failureCounter(for: store)),
            logger: logger
        )
        if let loaded = try await caughtUp {
            // How long a start takes is mostly this: worth seeing when the log grows.
            logger.info(
                "revocation log read into the index",
                metadata: ["rows": "\(loaded.rows)", "seconds": "\(String(format: "%.2f", loaded.took.timeInterval))"]
            )
        }
        logger.debug("password hashing", metadata: ["threads": "\(threads)", "queue": "\(hasher.capacity)"])
        let browser = BrowserSession(secret: secret, tokens: configuration.tokens, secureCookies: configuration.mode == .production)
        return TesseraServices(auth: auth, store: store, follower: follower, browser: browser, keys: keys, clients: clients, hashingThreads: pool)
    } catch {
        try? await pool.shutdownGracefully()
        throw error
    }
}

/// The timing rules of the key life cycle: a new key is published for at least twice the JWKS cache lifetime before
/// it signs (one lifetime for caches, the rest for every instance to read the keys again and for clock skew).
func keySchedule(_ configuration: Configuration) -> KeySchedule {
    KeySchedule(
        publication: configuration.keyPublication, tokenLifetime: configuration.tokens.accessTokenTTL + configuration.tokens.leeway,
        rotation: configuration.keyRotation, jwksMaxAge: min(.seconds(300), configuration.keyPublication / 2)
    )
}

/// Where the keys come from: HS256 secrets from the configuration, or key pairs in the database sealed under the
/// key-encryption keys (in development without any, under a key derived from the development secret).
func keySource(_ configuration: Configuration, developmentSecret: String) throws -> KeyManager.Source {
    guard configuration.jwtAlgorithm.isAsymmetric else {
        return .secrets(current: developmentSecret, previous: configuration.jwtPreviousSecrets)
    }
    let secrets = configuration.keyEncryptionKeys.isEmpty ? [developmentSecret] : configuration.keyEncryptionKeys
    return .database(configuration.jwtAlgorithm, try KeyEncryption(secrets: secrets))
}

/// Reads the signing keys and the registered clients again every few seconds, rotates keys on schedule, and
/// destroys private keys no longer needed.
struct KeyMaintenance: Service {
    let keys: KeyManager
    let clients: ClientRegistry
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
            do {
                try await self.keys.maintain()
            } catch {
                self.logger.warning("signing keys could not be read again", metadata: ["error": "\(String(reflecting: error))"])
            }
            do {
                try await self.clients.reload()
            } catch {
                self.logger.warning("clients could not be read again", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}

/// Where failed sign-ins are counted. On PostgreSQL, in the database, so that every instance sees the same counts
/// and an attacker cannot multiply the limits by the number of instances; on SQLite (one machine, one server) in
/// memory, which costs no write per failure.
func failureCounter(for store: SQLAuthStore) -> any FailureCounter {
    store.database.flavor == .postgres ? SQLFailureCounter(database: store.database) : InMemoryFailureCounter()
}

/// Builds the router: the JSON API of the contract, the web pages, and 405 answers for other methods on their paths.
public func buildRouter(services: TesseraServices, configuration: Configuration, renderer: PageRenderer) -> Router<TesseraRequestContext> {
    // HEAD is answered wherever GET is, as GET without its body (RFC 9110 §9.3.2).
    let router = Router(context: TesseraRequestContext.self, options: .autoGenerateHeadEndpoints)
    // Outermost: every request is counted and timed by its route template, whatever answers it.
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: RequestIdMiddleware())
    if configuration.accessLog { router.add(middleware: AccessLogMiddleware()) }
    router.add(middleware: ProblemMiddleware())
    if configuration.trustedProxies != .none { router.add(middleware: ClientAddressMiddleware(trustedProxies: configuration.trustedProxies)) }
    addAPIRoutes(to: router, services: services, registrationOpen: configuration.registrationOpen)
    addPageRoutes(to: router, services: services, renderer: renderer, registrationOpen: configuration.registrationOpen)
    // On the main port only behind a token of its own: the metrics say how many users and sessions there are.
    if configuration.metricsToken != nil {
        MetricsController(index: services.auth.index, token: configuration.metricsToken).addRoutes(to: router)
    }
    router.add(middleware: MethodsMiddleware(routes: router.routes.map { ($0.path, $0.method) }))
    return router
}

/// The routes of the API contract (`openapi.yaml` lists exactly these).
func addAPIRoutes(to router: Router<TesseraRequestContext>, services: TesseraServices, registrationOpen: Bool) {
    let auth = services.auth
    HealthController(auth: auth).addRoutes(to: router)
    OAuthController(auth: auth, keys: services.keys, clients: services.clients, issuer: auth.settings.issuer).addRoutes(to: router)
    RevocationFeedController(index: auth.index, feed: services.follower.feed, clients: services.clients).addRoutes(to: router)
    let api = router.group("api")
    let protectedAPI = router.group("api").add(middleware: AuthenticationMiddleware(auth: auth))
    AuthController(auth: auth, registrationOpen: registrationOpen).addRoutes(open: api.group("auth"), protected: protectedAPI.group("auth"))
    MeController(auth: auth).addRoutes(to: protectedAPI)
    APITokensController(auth: auth).addRoutes(to: protectedAPI)
    let admin = router.group("api/admin").add(middleware: AuthenticationMiddleware(auth: auth)).add(middleware: AdminMiddleware())
    AdminController(auth: auth).addRoutes(to: admin)
    ExplainController(auth: auth).addRoutes(to: admin)
    AdminKeysController(keys: services.keys, clients: services.clients).addRoutes(to: admin)
}

/// The web pages: sign-in and registration, the account page, the admin console, and their stylesheet and script.
func addPageRoutes(to router: Router<TesseraRequestContext>, services: TesseraServices, renderer: PageRenderer, registrationOpen: Bool) {
    let auth = services.auth
    let browser = services.browser
    router.get("/") { request, _ in pageRedirect(to: "/account", request: request) }
    router.get("static/{name}") { _, context -> Response in
        guard let name = context.parameters.get("name"), let asset = renderer.asset(named: name) else {
            throw ProblemError(.notFound, code: "not_found", detail: "There is no such file.")
        }
        return asset
    }
    let anonymous = router.group().add(middleware: PageErrorMiddleware(renderer: renderer)).add(middleware: CSRFMiddleware(browser: browser))
    let signedIn = router.group()
        .add(middleware: PageErrorMiddleware(renderer: renderer))
        .add(middleware: PageSessionMiddleware(auth: auth, browser: browser, refresher: RefreshCoalescer(auth: auth)))
        .add(middleware: CSRFMiddleware(browser: browser))
    SignInPages(auth: auth, browser: browser, renderer: renderer, registrationOpen: registrationOpen).addRoutes(anonymous: anonymous, signedIn: signedIn)
    AccountPages(auth: auth, browser: browser, renderer: renderer).addRoutes(to: signedIn)
    AdminPages(auth: auth, browser: browser, renderer: renderer, keys: services.keys, clients: services.clients).addRoutes(to: signedIn.group().add(middleware: AdminMiddleware()))
}

/// Builds the whole service: store, index and its follower, router and HTTP server, as one application whose
/// services shut down gracefully together.
public func buildApplication(configuration: Configuration, logger: Logger? = nil) async throws -> some ApplicationProtocol {
    var logger = logger ?? Logger(label: "tessera")
    logger.logLevel = configuration.logLevel
    // The metrics backend before anything that counts is built, so that every handle is bound to it.
    _ = PrometheusExport.registry
    // Templates first: a broken template fails the start before any database connection is open.
    let renderer = try await PageRenderer()
    let services = try await buildServices(configuration: configuration, logger: logger)
    let readyLogger = logger
    var app = Application(
        router: buildRouter(services: services, configuration: configuration, renderer: renderer),
        // A connection that has not sent a whole request head within the timeout, or sits idle between requests
        // that long, is closed: half-open connections must not hold file descriptors until they run out.
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [UnknownMethodHandler()],
                idleTimeout: .nanoseconds(Int64(configuration.requestTimeout.components.seconds) * 1_000_000_000)
            )
        ),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tessera"),
        onServerRunning: { channel in
            // Only now is the socket bound: "ready" is never logged for a server that could not listen.
            readyLogger.info(
                "tessera ready",
                metadata: [
                    "address": "\(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?")", "database": "\(configuration.database)",
                    "mode": "\(configuration.mode.rawValue)",
                ]
            )
        },
        logger: logger
    )
    // Services stop in reverse order: the HTTP server first, then the follower, and the database last.
    app.addServices(StoreCloser(services: services, logger: logger), services.follower)
    app.addServices(APITokenUseFlusher(auth: services.auth, interval: .seconds(5), logger: logger))
    app.addServices(Housekeeping(store: services.store, auditRetentionDays: configuration.auditRetentionDays, logger: logger))
    // Every instance must read a new key well within its publication period: every 10 s, or more often when the
    // period is short.
    let keyInterval = min(.seconds(10), configuration.keyPublication / 4)
    app.addServices(KeyMaintenance(keys: services.keys, clients: services.clients, interval: keyInterval, logger: logger))
    if let port = configuration.metricsPort {
        app.addServices(buildMetricsApplication(configuration: configuration, port: port, index: services.auth.index, logger: logger))
    }
    return app
}

/// Closes the database when the service group shuts down, after the commits already queued: a revocation the
/// server acknowledged is on disk before the process exits.
struct StoreCloser: Service {
    let services: TesseraServices
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        self.logger.info("shutting down: waiting for in-flight commits")
        await self.services.close()
        self.logger.info("shut down: every acknowledged commit is durable")
    }
}
