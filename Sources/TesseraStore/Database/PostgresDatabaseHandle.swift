import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit
import Synchronization
import TesseraCore

/// A PostgreSQL database through postgres-nio's `PostgresClient` (a connection pool), with SQLKit over each leased
/// connection through postgres-kit. Several Tessera instances share one database; what makes that correct lives
/// here and in the store's statements:
///
/// - every operation is bounded by ``operationTimeout``: a database that does not answer gives ``StoreUnavailable``
///   (503), never a request that hangs; a transaction whose time ran out is rolled back, not committed late;
/// - the revocation log is followed with a snapshot-diff cursor (PgQ's method): each row carries the `xid8` of the
///   transaction that wrote it, the cursor is the `pg_current_snapshot()` of the previous read, and a read returns
///   the rows whose transactions that snapshot did not see. Sequence numbers commit out of order under concurrent
///   writers; snapshots do not miss a commit, and a long transaction elsewhere only widens the range scanned;
/// - after a revocation commits, `NOTIFY tessera_revocations` wakes every follower (coalesced: many commits in a
///   burst send few notifications); each instance keeps one connection `LISTEN`ing, and re-establishes it, with a
///   catch-up read, when it drops.
public final class PostgresDatabaseHandle: SQLDatabaseHandle {
    public let flavor = SQLFlavor.postgres
    let client: PostgresClient
    /// Connections of their own for the follower's reads, the `LISTEN` and job locks, as on SQLite: a pool busy
    /// with requests must never make the index stale, and a job lock must never wait for the connections its job uses.
    let followerClient: PostgresClient
    /// The most connections `followerClient` opens: one listening, one reading, and one for each of the two jobs
    /// that may hold a lock at once (housekeeping, signing-key maintenance).
    static let followerConnections = 4
    private let running: Task<Void, Never>
    private let followerRunning: Task<Void, Never>
    let logger: Logger
    private let notifier = Mutex<NotifierState>(NotifierState())
    /// The follower's doorbell, rung after this instance commits revocations.
    private let localWake = Mutex<(@Sendable () -> Void)?>(nil)
    /// How long any one read or transaction may take before it is answered 503 and abandoned.
    /// 3 s, or `TESSERA_DATABASE_TIMEOUT` (seconds, for a loaded test machine).
    public static let operationTimeout: Duration = {
        let configured = ProcessInfo.processInfo.environment["TESSERA_DATABASE_TIMEOUT"].flatMap { Int($0) }
        return .seconds(configured.map { min(max($0, 1), 600) } ?? 3)
    }()
    /// The bound for work that is long by nature: a migration step, a batch of a copy.
    public static let longOperationTimeout: Duration = .seconds(600)
    /// The channel the log's growth is announced on.
    static let channel = "tessera_revocations"
    /// First key of Tessera's advisory locks (the second is the schema and the job, hashed).
    static let lockSpace: Int32 = 0x7E55

    private struct NotifierState {
        var pending = false
        var sending = false
        var task: Task<Void, Never>?
    }

    /// Names this handle in its notifications, so that it can ignore its own: the instance that wrote a revocation
    /// applied it already, and reading it back at every commit of a busy instance cost a third of its write rate.
    let identity = UUID().uuidString.lowercased()

    private init(client: PostgresClient, followerClient: PostgresClient, logger: Logger) {
        self.client = client
        self.followerClient = followerClient
        self.logger = logger
        // The pools run for the handle's life: migrations and one-shot commands need them before (or without) a
        // service group; `close()` ends them.
        self.running = Task { await client.run() }
        self.followerRunning = Task { await followerClient.run() }
    }

    /// Connects to the database a `postgres://` URL names and checks that it answers.
    public static func open(url: String, poolSize: Int = 10, logger: Logger) async throws -> PostgresDatabaseHandle {
        let parsed = try PostgresURL(url)
        let configuration = try parsed.clientConfiguration(poolSize: poolSize)
        let followerConfiguration = try parsed.clientConfiguration(poolSize: Self.followerConnections)
        // The pool reports every failed connection attempt at info, about twice a second while the database is
        // down; the follower already logs the outage once, and its end.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        let handle = PostgresDatabaseHandle(
            client: PostgresClient(configuration: configuration, backgroundLogger: background),
            followerClient: PostgresClient(configuration: followerConfiguration, backgroundLogger: background), logger: logger
        )
        do {
            try await handle.read { db in try await db.raw("SELECT 1").run() }
            return handle
        } catch {
            await handle.close()
            throw error
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await self.bounded {
            try await self.client.withConnection { connection in try await body(connection.sql(queryLogLevel: nil)) }
        }
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await self.bounded {
            do {
                return try await self.client.withTransaction(logger: self.logger) { connection in
                    let value = try await body(connection.sql(queryLogLevel: nil))
                    // Out of time: roll back rather than commit what the caller was already told failed. Past
                    // this point the `COMMIT` is on its way, and the caller waits for its outcome (see `Deadline`).
                    try Deadline.enterCommit()
                    return value
                }
            } catch let error as PostgresTransactionError {
                throw Self.unwrap(error)
            }
        }
    }

    /// One statement in autocommit: PostgreSQL makes it a transaction of its own, committed (and, with
    /// `synchronous_commit` on, flushed) before the answer arrives.
    public func statement<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await self.bounded {
            try await self.client.withConnection { connection in try await body(connection.sql(queryLogLevel: nil)) }
        }
    }

    /// The error that matters in a failed transaction: the body's own (a domain error such as `email_taken` must
    /// reach the caller as itself), else the `BEGIN`'s or the `COMMIT`'s.
    static func unwrap(_ error: PostgresTransactionError) -> any Error {
        if let error = error.closureError { return error }
        if let error = error.beginError { return error }
        if let error = error.commitError { return error }
        return error
    }

    /// Sends a notification still pending (a CLI's revocation must wake the servers before the command exits), then
    /// closes both pools.
    public func close() async {
        let notifying = self.notifier.withLock { $0.task }
        _ = await notifying?.result
        self.running.cancel()
        self.followerRunning.cancel()
        await self.running.value
        await self.followerRunning.value
    }

    public func rowLock(of alias: String?) -> String { alias.map { " FOR UPDATE OF \($0)" } ?? " FOR UPDATE" }

    /// Advisory locks are per database; Tessera's are also per schema (`hashtext(current_schema())`), so that two
    /// deployments in two schemas of one database never wait for each other.
    public func lockForMigration(on db: any SQLDatabase) async throws {
        try await db.raw("SELECT pg_advisory_xact_lock(\(literal: Int(Self.lockSpace)), hashtext(current_schema() || ':migrations'))").run()
    }

    public func exclusively<T: Sendable>(_ job: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        let name = ":" + job
        do {
            return try await self.followerClient.withConnection { connection -> T? in
                let got = try await connection.query(
                    "SELECT pg_try_advisory_lock(\(Self.lockSpace), hashtext(current_schema() || \(name))) AS got", logger: self.logger
                ).collect().first?.decode(Bool.self) ?? false
                guard got else { return nil }
                let unlock: PostgresQuery = "SELECT pg_advisory_unlock(\(Self.lockSpace), hashtext(current_schema() || \(name)))"
                // Unlocked in a task of its own, which the shutdown's cancellation does not reach: a session lock
                // left on a pooled connection would keep every instance from the job until that connection closed.
                let logger = self.logger
                let release = { await Task { _ = try? await connection.query(unlock, logger: logger) }.value }
                do {
                    let value = try await body()
                    await release()
                    return value
                } catch {
                    await release()
                    throw error
                }
            }
        } catch {
            throw Self.translate(error)
        }
    }

    public func continueNumbering(_ table: String, column: String, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            SELECT setval(pg_get_serial_sequence(\(bind: table), \(bind: column)), (SELECT COALESCE(MAX(\(unsafeRaw: column)), 0) + 1 FROM \(unsafeRaw: table)), false)
            """
        ).run()
    }

    public func announceRevocations() {
        // This instance's follower reads its own writes at once too, so that the revocation feed carries them.
        self.localWake.withLock { $0 }?()
        let start = self.notifier.withLock { state -> Bool in
            state.pending = true
            guard !state.sending else { return false }
            state.sending = true
            return true
        }
        guard start else { return }
        let task = Task {
            while self.notifier.withLock({ state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.sending = false
                return false
            }) {
                do {
                    _ = try await self.bounded {
                        try await self.client.query("SELECT pg_notify(\(Self.channel), \(self.identity))", logger: self.logger)
                    }
                } catch {
                    // The revocation is committed; followers find it at their next poll.
                    self.logger.debug("could not announce revocations", metadata: ["error": "\(String(reflecting: type(of: error)))"])
                }
                // Under a stream of revocations, at most one notification per interval: each costs the cluster a
                // global lock and every follower a read, and the commits of the interval ride on the next one.
                try? await Task.sleep(for: Self.notificationSpacing)
            }
        }
        self.notifier.withLock { $0.task = task }
    }

    /// The least time between two notifications of one instance (what it may add to propagation under load).
    static let notificationSpacing: Duration = .milliseconds(5)

    public func watchRevocations(wake: @escaping @Sendable () -> Void) async {
        self.localWake.withLock { $0 = wake }
        var failing = false
        while !Task.isCancelled {
            do {
                try await self.followerClient.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        // Listening (again): whatever was announced while it was not is read now.
                        wake()
                        if failing { self.logger.info("listening for revocations again") }
                        failing = false
                        for try await notification in notifications where notification.payload != self.identity { wake() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if !failing { self.logger.warning("lost the connection listening for revocations; polling until it is back") }
                failing = true
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Runs the operation, or answers ``StoreUnavailable`` once ``operationTimeout`` has passed (and cancels it).
    /// Migrations and copies (``DatabaseWork/isLong``) get ``longOperationTimeout``.
    func bounded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await Deadline.run(within: DatabaseWork.isLong ? Self.longOperationTimeout : Self.operationTimeout, operation)
        } catch {
            throw Self.translate(error)
        }
    }

    /// Serialization failure and deadlock: PostgreSQL rolled the transaction back to let another one through.
    static let conflictStates = ["40001", "40P01"]

    /// What a "cannot now" SQLSTATE becomes: one form, so that ``wroteNothing(_:)`` recognises what
    /// ``translate(_:)`` made.
    static func unavailable(sqlState: String) -> StoreUnavailable { StoreUnavailable("PostgreSQL \(sqlState)") }

    /// Whether a failed autocommit statement (as ``translate(_:)`` reports it) certainly wrote nothing, so that its
    /// parts may be tried again one by one: PostgreSQL refused it (a value it cannot store), or made it a deadlock's
    /// or a serialization conflict's victim. Not an outage, and not an error found after the commit.
    @Sendable static func wroteNothing(_ error: any Error) -> Bool {
        if error is PostgresStatementError { return true }
        if let unavailable = error as? StoreUnavailable { return Self.conflictStates.contains { unavailable == Self.unavailable(sqlState: $0) } }
        return false
    }

    /// PostgreSQL's "cannot now" errors (connection lost or refused, server shutting down or starting, too many
    /// connections, out of resources, serialization or deadlock, lock not available) become ``StoreUnavailable``;
    /// the rest stay as they are.
    static func translate(_ error: any Error) -> any Error {
        switch error {
        case is StoreUnavailable, is CancellationError, is AuthError: return error
        case let error as PostgresTransactionError: return translate(unwrap(error))
        case let error as PSQLError:
            switch error.code {
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                let cannotNow =
                    ["08", "53", "57", "58"].contains(where: state.hasPrefix) || (Self.conflictStates + ["55P03", "25006"]).contains(state)
                if cannotNow { return Self.unavailable(sqlState: state) }
                return PostgresStatementError(sqlState: state, message: error.serverInfo?[.message] ?? "")
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .queryCancelled,
                .listenFailed:
                return StoreUnavailable("PostgreSQL connection: \(error.code)")
            default:
                return error
            }
        case is IOError, is ChannelError:
            return StoreUnavailable("PostgreSQL connection: \(type(of: error))")
        default:
            // The pool's own errors (its requests cancelled, the pool shut down) are not public types.
            let name = String(reflecting: type(of: error))
            if name.hasPrefix("_ConnectionPoolModule.") || name.hasPrefix("PostgresNIO.") { return StoreUnavailable("PostgreSQL: \(name)") }
            return error
        }
    }
}

/// A statement PostgreSQL refused for a reason other than "not now": its SQLSTATE and message (never the
/// statement's values, which postgres-nio keeps out of descriptions for the same reason).
public struct PostgresStatementError: Error, CustomStringConvertible {
    public var sqlState: String
    public var message: String
    public var description: String { "PostgreSQL refused a statement: \(self.sqlState) \(self.message)" }
}

/// The parts of a `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…` URL.
struct PostgresURL {
    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var sslMode: String
    var rootCertificate: String?
    /// libpq's `options`: server settings for every connection, such as `-c search_path=tessera`.
    var options: String?

    init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw DatabaseURLError(text: text, problem: "it is not a postgres:// URL")
        }
        guard let user = components.user, !user.isEmpty else {
            throw DatabaseURLError(text: "postgres://…", problem: "it names no user (postgres://USER:PASSWORD@HOST:PORT/DATABASE)")
        }
        self.host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        self.port = components.port ?? 5432
        // URLComponents has percent-decoded these already (`percentEncodedUser` is the raw form).
        self.username = user
        self.password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        var mode = "prefer"
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(value) else {
                    throw DatabaseURLError(
                        text: "postgres://…", problem: "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not '\(item.value ?? "")'"
                    )
                }
                mode = value
            case "sslrootcert": self.rootCertificate = item.value
            case "options": self.options = item.value
            default:
                throw DatabaseURLError(
                    text: "postgres://…", problem: "unknown parameter '\(item.name)' (sslmode, sslrootcert and options are understood)"
                )
            }
        }
        self.sslMode = mode
    }

    /// libpq's meaning of `sslmode`: `prefer` (the default) and `require` encrypt without checking the certificate,
    /// `verify-ca` checks it against the root certificate, `verify-full` also checks the host name.
    func clientConfiguration(poolSize: Int) throws -> PostgresClient.Configuration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let root = self.rootCertificate { tls.trustRoots = .file(root) }
        let setting: PostgresClient.Configuration.TLS
        switch self.sslMode {
        case "disable":
            setting = .disable
        case "allow", "prefer":
            tls.certificateVerification = .none
            setting = .prefer(tls)
        case "require":
            tls.certificateVerification = .none
            setting = .require(tls)
        case "verify-ca":
            tls.certificateVerification = .noHostnameVerification
            setting = .require(tls)
        default:
            tls.certificateVerification = .fullVerification
            setting = .require(tls)
        }
        var configuration = PostgresClient.Configuration(
            host: self.host, port: self.port, username: self.username, password: self.password, database: self.database, tls: setting
        )
        configuration.options.maximumConnections = max(2, poolSize)
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(2)
        if let options = self.options { configuration.options.additionalStartupParameters = [("options", options)] }
        return configuration
    }
}

/// Runs an operation with a time limit that holds even when the operation ignores cancellation: the caller is
/// answered when time is up, and the operation is cancelled and left to finish on its own — unless it has begun to
/// commit (``enterCommit()``): a caller must never be told "nothing was written" about a `COMMIT` that may land, so
/// from then on it waits for the outcome, up to ``commitPatience`` more.
enum Deadline {
    /// How long a caller waits for a `COMMIT` already sent before it is told the outcome is unknown.
    static let commitPatience: Duration = .seconds(30)

    /// The caller's continuation, the worker and the timer, shared by them and the cancellation handler.
    private final class Race<T: Sendable>: Sendable {
        let answer = Mutex<CheckedContinuation<T, any Error>?>(nil)
        let worker = Mutex<Task<Void, Never>?>(nil)
        let committing = CommitFlag()

        /// Answers the caller unless someone already did; true if this call did.
        @discardableResult
        func finish(_ result: Result<T, any Error>) -> Bool {
            let continuation = self.answer.withLock { continuation -> CheckedContinuation<T, any Error>? in
                defer { continuation = nil }
                return continuation
            }
            continuation?.resume(with: result)
            return continuation != nil
        }

        /// Out of time: answers the caller 503 (unless someone already answered) and cancels the worker.
        func abandon(_ reason: String) {
            if self.finish(.failure(StoreUnavailable(reason))) { self.worker.withLock { $0?.cancel() } }
        }
    }

    /// Whether an operation has begun to commit.
    fileprivate final class CommitFlag: Sendable {
        private let value = Mutex(false)
        func set() { self.value.withLock { $0 = true } }
        var isSet: Bool { self.value.withLock { $0 } }
    }

    /// Set in the worker's task: what ``enterCommit()`` marks.
    @TaskLocal fileprivate static var committing: CommitFlag?

    /// Called by a transaction's body just before its `COMMIT` is sent: throws if time is already up (then it rolls
    /// back), and otherwise keeps the deadline from answering before the `COMMIT`'s outcome is known.
    static func enterCommit() throws {
        try Task.checkCancellation()
        Self.committing?.set()
    }

    static func run<T: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                race.answer.withLock { $0 = continuation }
                let timer = Task {
                    try? await Task.sleep(for: limit)
                    if Task.isCancelled { return }
                    if race.committing.isSet {
                        try? await Task.sleep(for: Self.commitPatience)
                        if Task.isCancelled { return }
                        race.abandon("the database did not confirm a commit within \(limit + Self.commitPatience)")
                        return
                    }
                    race.abandon("the database did not answer within \(limit)")
                }
                let task = Task {
                    do {
                        let value = try await Self.$committing.withValue(race.committing) { try await operation() }
                        race.finish(.success(value))
                    } catch {
                        race.finish(.failure(error))
                    }
                    // Done in time: the timer has nothing left to do (thousands of sleeping timers otherwise).
                    timer.cancel()
                }
                race.worker.withLock { $0 = task }
                // Cancelled before the worker existed: the cancellation handler found nothing to cancel.
                if Task.isCancelled { task.cancel() }
            }
        } onCancel: {
            race.worker.withLock { $0?.cancel() }
        }
    }
}
