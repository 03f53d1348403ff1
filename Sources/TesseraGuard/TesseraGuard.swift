import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import TesseraTokens

/// Enforces Tessera's revocations inside another service, with no network call per request.
///
/// The guard reads Tessera's JWKS and follows its revocation feed (a snapshot, then long-polled changes) into the
/// same ``RevocationIndex`` Tessera itself checks, and verifies tokens with the same ``AccessTokenVerifier``.
/// ``check(bearer:)`` answers in memory. It fails closed: once it has not heard from Tessera within
/// ``TesseraGuardConfiguration/stalenessBound`` (counted from when the instance it reads last heard from its
/// database, never by comparing two hosts' clocks), every check is ``Decision/unavailable(retryAfterSeconds:)``.
///
/// Run ``run()`` for as long as the service runs (the Hummingbird integration makes the guard a `Service`).
public final class TesseraGuard: Sendable {
    /// What a check comes to.
    public enum Decision: Sendable, Equatable {
        /// A valid token of Tessera's that no revocation covers: its claims.
        case accepted(VerifiedAccessToken)
        /// A valid token of Tessera's that was revoked (Tessera answers `token_revoked`).
        case revoked
        /// Not a valid token (malformed, forged, expired, another issuer…). The reason is for a debug log, never for
        /// the client.
        case refused(reason: String)
        /// The guard has not heard from Tessera within its bound: answer 503 rather than guess.
        case unavailable(retryAfterSeconds: Int)
    }

    public let configuration: TesseraGuardConfiguration
    /// What the guard knows of Tessera's revocations.
    public let index: RevocationIndex
    let keys: GuardKeys
    let verifier: AccessTokenVerifier
    let httpClient: HTTPClient
    let logger: Logger
    private let authorization: String

    /// - Parameters:
    ///   - httpClient: the client that reaches Tessera (``HTTPClient/shared`` by default).
    public init(configuration: TesseraGuardConfiguration, httpClient: HTTPClient = .shared, logger: Logger = Logger(label: "tessera.guard")) {
        self.configuration = configuration
        self.index = RevocationIndex(stalenessBound: configuration.stalenessBound)
        self.keys = GuardKeys()
        self.verifier = AccessTokenVerifier(
            keys: self.keys, settings: TokenSettings(issuer: configuration.issuer, audience: configuration.audience, leeway: configuration.leeway)
        )
        self.httpClient = httpClient
        self.logger = logger
        self.authorization = "Basic " + Data("\(Self.formEncode(configuration.clientId)):\(Self.formEncode(configuration.clientSecret))".utf8).base64EncodedString()
    }

    /// Checks a bearer token (the part after `Bearer `). No I/O; for a token seen before, no allocation.
    public func check(bearer token: String) -> Decision {
        var token = token
        return token.withUTF8 { self.check(tokenBytes: $0) }
    }

    /// Checks a bearer token given as its bytes, e.g. where it lies in a request's header.
    public func check(tokenBytes token: UnsafeBufferPointer<UInt8>) -> Decision {
        let verified: VerifiedAccessToken
        do {
            verified = try self.verifier.verify(bytes: token, now: Date())
        } catch {
            // Before the keys and the first snapshot are read, or once stale, nothing is known: not even a refusal.
            if !self.index.isCurrent() { return .unavailable(retryAfterSeconds: 1) }
            if case .invalidToken(let reason) = error { return .refused(reason: reason) }
            return .refused(reason: "invalid token")
        }
        switch self.index.verdict(for: verified) {
        case .accepted: return .accepted(verified)
        case .revoked: return .revoked
        case .stale: return .unavailable(retryAfterSeconds: 1)
        }
    }

    /// Installs keys without reading a JWKS, for benchmarks and tests of the check alone.
    @_spi(Testing) public func install(keys: [VerificationKey], algorithm: SigningAlgorithm) throws {
        let document = JWKS(keys: keys.compactMap { $0.publicJWK }.map { jwk in
            JWKS.Key(kty: jwk["kty"], crv: jwk["crv"], x: jwk["x"], y: jwk["y"], kid: jwk["kid"], alg: jwk["alg"], use: jwk["use"])
        })
        try self.keys.replace(withJWKS: document, pinned: algorithm)
    }

    /// Whether the guard has heard from Tessera within its bound (for a readiness check).
    public var isCurrent: Bool { self.index.isCurrent() }

    /// Follows Tessera's keys and revocations until the task is cancelled.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followKeys() }
            group.addTask { await self.followFeed() }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: Keys

    private func followKeys() async {
        var backoff = Backoff()
        while !Task.isCancelled {
            var next: Duration
            do {
                next = try await self.fetchKeys()
                backoff.reset()
            } catch {
                if !Task.isCancelled { self.logger.error("cannot read Tessera's JWKS", metadata: ["error": "\(error)"]) }
                next = backoff.next()
            }
            // Until the cache time runs out, or a token names a kid not held.
            let until = ContinuousClock.now + next
            while ContinuousClock.now < until, !self.keys.takeReloadRequest(), !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Reads the JWKS; returns how long it may be kept (its `max-age`, 1 s to 5 min).
    private func fetchKeys() async throws -> Duration {
        let (body, headers) = try await self.get("/.well-known/jwks.json", timeout: .seconds(10), authenticated: false)
        let set = try self.keys.replace(withJWKS: try JSONDecoder().decode(JWKS.self, from: body), pinned: self.configuration.algorithm)
        self.logger.debug("read Tessera's keys", metadata: ["kids": "\(set.keys.map(\.kid))", "algorithm": "\(set.algorithm.rawValue)"])
        let maxAge = headers.first(name: "cache-control")?.split(separator: ",").lazy
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix("max-age=") }
            .flatMap { Int($0.dropFirst("max-age=".count)) } ?? 60
        return .seconds(min(max(maxAge, 1), 300))
    }

    // MARK: Revocations

    private func followFeed() async {
        var cursor: String?
        var backoff = Backoff()
        var failing = false
        var lastSnapshot: ContinuousClock.Instant?
        var lastPrune = ContinuousClock.now
        // The keys first: until they are read no token can be checked, and the guard is not yet current.
        while !self.keys.isLoaded, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
        while !Task.isCancelled {
            do {
                if let current = cursor {
                    cursor = try await self.readChanges(after: current)
                } else {
                    // A cursor that keeps going (a misbehaving proxy, a cursor too long to send) must not turn into a
                    // stream of snapshots: at most one a second.
                    if let last = lastSnapshot, last.duration(to: .now) < .seconds(1) { try? await Task.sleep(until: last + .seconds(1)) }
                    lastSnapshot = .now
                    cursor = try await self.readSnapshot()
                }
                backoff.reset()
                if failing { self.logger.info("following Tessera's revocations again") }
                failing = false
            } catch GuardError.cursorGone {
                self.logger.info("the feed cursor is gone (Tessera's database was replaced, or this guard fell far behind): taking a snapshot")
                cursor = nil
            } catch RevocationFeedRow.Unreadable.unknownKind(let kind) {
                // A cut this guard cannot read would be a cut it does not enforce: every check answers unavailable
                // until the guard is upgraded (the service stays up, answering 503).
                self.index.markUnsynced()
                self.logger.critical("the feed sent a row this guard cannot enforce: upgrade it; every check answers unavailable", metadata: ["kind": "\(kind)"])
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
                return
            } catch {
                if Task.isCancelled { return }
                if !failing {
                    self.logger.error(
                        "cannot follow Tessera's revocations; failing closed once the bound passes",
                        metadata: ["error": "\(error)", "client": "\(self.configuration.clientId)"]
                    )
                }
                failing = true
                switch error {
                case is RevocationFeedRow.Unreadable, GuardError.status(400, _), is DecodingError: cursor = nil
                default: break
                }
                try? await Task.sleep(for: backoff.next())
            }
            if lastPrune.duration(to: .now) >= .seconds(60) {
                self.index.prune()
                lastPrune = .now
            }
        }
    }

    /// Takes a snapshot and replaces what the guard knows with it; returns the cursor to continue from.
    private func readSnapshot() async throws -> String {
        let sent = ContinuousClock.now
        let (body, _) = try await self.get("/api/revocations/snapshot", timeout: .seconds(30), authenticated: true)
        let answer = try FeedAnswer.decoder.decode(FeedAnswer.self, from: body)
        let entries = try answer.entries.map { try $0.entry() }
        self.index.replace(with: entries)
        // A snapshot may be large and slow to send: counted from when it was asked for, not from when it arrived; and
        // the state is now the snapshot's, so its time replaces whatever an earlier answer said (an instance behind the
        // one read before gives an older snapshot).
        self.index.resetSynced(to: sent - .milliseconds(max(answer.indexAgeMs, 0)))
        self.logger.info("took a snapshot of Tessera's revocations", metadata: ["rows": "\(entries.count)"])
        return answer.cursor
    }

    /// One long poll; returns the cursor to continue from.
    private func readChanges(after cursor: String) async throws -> String {
        let wait = self.configuration.feedWait
        let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
        var query = URLComponents()
        query.queryItems = [URLQueryItem(name: "cursor", value: cursor), URLQueryItem(name: "wait", value: "\(milliseconds)ms")]
        let sent = ContinuousClock.now
        let (body, _) = try await self.get("/api/revocations/changes?" + (query.percentEncodedQuery ?? ""), timeout: wait + .seconds(3), authenticated: true)
        let received = ContinuousClock.now
        let answer = try FeedAnswer.decoder.decode(FeedAnswer.self, from: body)
        let entries = try answer.entries.map { try $0.entry() }
        if !entries.isEmpty {
            self.index.apply(entries)
            self.logger.debug("applied revocations", metadata: ["rows": "\(entries.count)"])
        }
        // The answer was current `indexAgeMs` before it was written, which was `heldMs` after the request left: counted
        // from there, not from its arrival, so that an answer held up on the way back is not taken for a fresh one.
        let answered = answer.heldMs.map { min(received, sent + .milliseconds(max($0, 0))) } ?? received
        self.index.markSynced(at: answered - .milliseconds(max(answer.indexAgeMs, 0)))
        return answer.cursor
    }

    // MARK: HTTP

    private func get(_ path: String, timeout: Duration, authenticated: Bool) async throws -> (Data, HTTPHeaders) {
        var request = HTTPClientRequest(url: self.configuration.tesseraURL + path)
        request.headers.add(name: "Accept", value: "application/json")
        if authenticated { request.headers.add(name: "Authorization", value: self.authorization) }
        let (seconds, attoseconds) = timeout.components
        let response = try await self.httpClient.execute(request, timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        let body = try await response.body.collect(upTo: 512 * 1024 * 1024)
        switch response.status.code {
        case 200: return (Data(buffer: body), response.headers)
        case 410: throw GuardError.cursorGone
        default: throw GuardError.status(Int(response.status.code), path: String(path.prefix(while: { $0 != "?" })))
        }
    }

    /// RFC 6749 §2.3.1: client id and secret are form-encoded before they are joined for HTTP Basic.
    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// Waits between failed attempts: 100 ms, doubling to 2 s.
struct Backoff {
    private var current: Duration = .milliseconds(100)

    mutating func next() -> Duration {
        defer { self.current = min(self.current * 2, .seconds(2)) }
        return self.current
    }

    mutating func reset() { self.current = .milliseconds(100) }
}
