import Foundation
import Logging
import Metrics
import Synchronization
import TesseraCore

/// Keeps an instance's ``KeyRing`` in step with the keys in the database, and changes them: the first key, a
/// rotation, a retirement, a revocation. The server calls ``maintain()`` every few seconds: it reads the keys again
/// (a key's state follows from its times, so no instance has to be told when one becomes current), rotates on
/// schedule, and destroys the private halves of keys whose tokens have all expired.
///
/// With HS256 the keys are secrets from the configuration (`JWT_SECRET` signs, `JWT_PREVIOUS_SECRETS` verify): there
/// is nothing in the database to manage, and rotation is a change of configuration. Revoking a key works the same
/// for both: a `key` row in the revocation log, refused everywhere at once.
public final class KeyManager: Sendable {
    public enum Source: Sendable {
        /// HS256: the signing secret and the secrets that still verify.
        case secrets(current: String, previous: [String])
        /// EdDSA or ES256: key pairs in the database, private halves sealed.
        case database(SigningAlgorithm, KeyEncryption)
    }

    public let store: SQLAuthStore
    public let index: RevocationIndex
    public let schedule: KeySchedule
    public let source: Source
    /// What the verifier and signer read.
    public let ring: KeyRing
    let logger: Logger
    private let generations = Mutex<(started: Int, installed: Int)>((0, 0))
    private let clock: any WallClock

    public var algorithm: SigningAlgorithm { self.ring.snapshot.algorithm }

    /// Builds the ring: from the secrets, or from the database (creating the first key when there is none).
    public init(
        store: SQLAuthStore, index: RevocationIndex, schedule: KeySchedule, source: Source,
        clock: any WallClock = SystemWallClock(), logger: Logger
    ) async throws {
        self.store = store
        self.index = index
        self.schedule = schedule
        self.source = source
        self.clock = clock
        self.logger = logger
        switch source {
        case .secrets(let current, let previous):
            var verifying: [SigningKey] = []
            for secret in previous { verifying.append(try await SigningKey(secret: secret)) }
            self.ring = KeyRing(KeyRing.Contents(current: try await SigningKey(secret: current), verifying: verifying))
        case .database(let algorithm, let encryption):
            self.ring = KeyRing(
                try await Self.load(store: store, algorithm: algorithm, encryption: encryption, schedule: schedule, now: clock.now(), logger: logger, createIfNone: true)
            )
        }
        self.ring.setReloader { [weak self] in try await self?.reload() }
    }

    // MARK: Reading

    /// Reads the keys again and installs what they say now.
    public func reload() async throws {
        guard case .database(let algorithm, let encryption) = self.source else { return }
        // Reloads may run at once (maintenance, a revoked key met while signing, an unknown kid): only a read that
        // started after the one installed last may replace it, so that an older read never undoes a newer one.
        let generation = self.generations.withLock { state -> Int in
            state.started += 1
            return state.started
        }
        let contents: KeyRing.Contents
        do {
            contents = try await Self.load(
                store: self.store, algorithm: algorithm, encryption: encryption, schedule: self.schedule, now: self.clock.now(), logger: self.logger,
                createIfNone: true, previous: self.ring.snapshot
            )
        } catch let unavailable as StoreUnavailable {
            throw unavailable
        } catch {
            // Whatever went wrong reading them, a request waiting on the keys gets 503, never a 500.
            throw StoreUnavailable("the signing keys could not be read: \(error)")
        }
        let newest = self.generations.withLock { state -> Bool in
            guard generation > state.installed else { return false }
            state.installed = generation
            return true
        }
        guard newest else { return }
        self.ring.replace(with: contents)
    }

    /// After a key change has committed, the ring is read again; a failure then must not report the change as not
    /// made (it is; maintenance reads the keys again within seconds).
    func reloadAfterChange() async {
        do {
            try await self.reload()
        } catch {
            self.logger.warning("the signing keys could not be read again after a change", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Every key with its state, newest last: the stored ones, or the configured secrets.
    public func list() async throws -> [KeyStatus] {
        switch self.source {
        case .secrets:
            let contents = self.ring.snapshot
            return contents.verifying.map { key in
                KeyStatus(
                    key: StoredSigningKey(
                        kid: key.kid, algorithm: .hs256, publicKey: [], sealedPrivateKey: nil, sealedWith: nil, createdAt: Date(timeIntervalSince1970: 0),
                        activeFrom: Date(timeIntervalSince1970: 0)
                    ),
                    state: self.index.isKeyRevoked(key.kid) ? .revoked : key.kid == contents.current.kid ? .current : .retired, signsUntil: nil,
                    verifiesUntil: nil
                )
            }
        case .database(let algorithm, _):
            return self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: self.clock.now())
        }
    }

    /// The public keys other services verify with: every key that verifies, as JWKs (none with HS256).
    public var publishedKeys: [[String: String]] {
        let revoked = self.index.revokedKeys
        return self.ring.snapshot.verifying.compactMap { key in revoked.contains(key.kid) ? nil : key.publicJWK }
    }

    static func load(
        store: SQLAuthStore, algorithm: SigningAlgorithm, encryption: KeyEncryption, schedule: KeySchedule, now: Date, logger: Logger, createIfNone: Bool,
        previous: KeyRing.Contents? = nil
    ) async throws -> KeyRing.Contents {
        var statuses = schedule.statuses(of: try await store.signingKeys(algorithm: algorithm), now: now)
        if createIfNone, !statuses.contains(where: { $0.state == .current }) {
            // The first start (or every key retired or revoked): a key that signs at once. No other service can
            // have cached a key set without it yet, or (after a revocation) it must not wait.
            let created = try Self.newKey(algorithm, encryption: encryption, now: now, activeFrom: now)
            let audit = AuditRecord(
                at: now, event: .keyCreated, details: ["kid": created.kid, "algorithm": algorithm.rawValue, "reason": "no key signs", "activeFrom": iso(now)]
            )
            // Decided again inside the lock, by the same schedule: another instance may have made one meanwhile.
            let decide: @Sendable ([StoredSigningKey]) -> Bool = { rows in !schedule.statuses(of: rows, now: now).contains { $0.state == .current } }
            if try await store.addSigningKey(created, if: decide, audit: audit) {
                logger.notice("signing key created", metadata: ["kid": "\(created.kid)", "algorithm": "\(algorithm.rawValue)"])
            }
            statuses = schedule.statuses(of: try await store.signingKeys(algorithm: algorithm), now: now)
        }
        guard let current = statuses.last(where: { $0.state == .current }) else {
            throw KeyEncryptionError("no \(algorithm.rawValue) signing key is current")
        }
        var verifying: [SigningKey] = []
        var currentKey: SigningKey?
        // The next key to sign: the ring switches to it on time by itself.
        let next = statuses.filter { $0.state == .published }.min { $0.key.activeFrom < $1.key.activeFrom }
        var nextKey: SigningKey?
        for status in statuses where status.state.verifies {
            let stored = status.key
            // The private half is opened for the keys that sign now or will next; retired keys only verify.
            var privateKey: [UInt8]?
            if status.state != .retired, let sealed = stored.sealedPrivateKey {
                privateKey = encryption.open(sealed, sealedWith: stored.sealedWith, kid: stored.kid)
                if privateKey == nil {
                    logger.error(
                        "a signing key's private half cannot be opened with the key-encryption keys given",
                        metadata: ["kid": "\(stored.kid)", "sealedWith": "\(stored.sealedWith ?? "-")"]
                    )
                } else if let opened = privateKey, stored.sealedWith != encryption.currentId {
                    // Sealed under an older key-encryption key: sealed again under the newest.
                    let resealed = try encryption.seal(opened, kid: stored.kid)
                    try await store.resealSigningKey(kid: stored.kid, from: sealed, to: resealed.sealed, with: resealed.with)
                    logger.notice("signing key sealed again under the newest key-encryption key", metadata: ["kid": "\(stored.kid)", "with": "\(resealed.with)"])
                }
            }
            var key = try await SigningKey.asymmetric(algorithm, publicKey: stored.publicKey, privateKey: privateKey)
            // A key this instance could open before but cannot now (another instance sealed it again under a newer
            // key-encryption key during a rolling change): keep the private half it already holds.
            if !key.canSign, status.state != .retired, let held = previous?.verifying.first(where: { $0.kid == stored.kid && $0.canSign }) {
                key = held
            }
            guard key.kid == stored.kid else { throw KeyEncryptionError("signing key \(stored.kid) does not match its public key") }
            if stored.kid == current.key.kid { currentKey = key }
            if stored.kid == next?.key.kid { nextKey = key }
            verifying.append(key)
        }
        guard let currentKey else { throw KeyEncryptionError("the current signing key \(current.key.kid) could not be read") }
        if !currentKey.canSign {
            // Tokens already issued still verify; sign-ins answer 503 until the operator gives the key-encryption key
            // back, or rotates and retires (or revokes) the key that cannot be opened; the commands still run.
            logger.critical(
                "the current signing key cannot be opened with TESSERA_KEY_ENCRYPTION_KEY: nothing can be signed; give back the key-encryption key it was sealed with, or run `tessera keys rotate` then `tessera keys retire KID`",
                metadata: ["kid": "\(current.key.kid)", "sealedWith": "\(current.key.sealedWith ?? "-")"]
            )
        }
        return KeyRing.Contents(current: currentKey, verifying: verifying, upcoming: nextKey, from: next?.key.activeFrom)
    }

    /// The current key that is retiring in favour of the key being removed, when no other waiting key would take
    /// over: its retirement is taken back in the same transaction, so that a key always signs after the removal.
    static func keyLeftWithoutSuccessor(removing kid: String, from statuses: [KeyStatus]) -> String? {
        guard let current = statuses.last(where: { $0.state == .current }), current.key.retiredAt != nil,
            !statuses.contains(where: { $0.state == .published && $0.key.kid != kid })
        else { return nil }
        return current.key.kid
    }

    static func newKey(_ algorithm: SigningAlgorithm, encryption: KeyEncryption, now: Date, activeFrom: Date) throws -> StoredSigningKey {
        guard let pair = SigningKey.generatePair(algorithm) else { throw KeyEncryptionError("\(algorithm.rawValue) keys are not key pairs") }
        let kid = SigningKey.publicMembers(algorithm, publicKey: pair.publicKey).kid
        let sealed = try encryption.seal(pair.privateKey, kid: kid)
        return StoredSigningKey(
            kid: kid, algorithm: algorithm, publicKey: pair.publicKey, sealedPrivateKey: sealed.sealed, sealedWith: sealed.with, createdAt: now,
            activeFrom: activeFrom
        )
    }

    // MARK: Changing

    /// Publishes a new key that becomes current after the publication period. Refused while one is waiting already.
    public func rotate(actorId: UUID?, origin: RequestOrigin = RequestOrigin(), reason: String = "rotate") async throws -> KeyStatus {
        guard case .database(let algorithm, let encryption) = self.source else { throw KeyChangeError.configuredSecrets }
        let now = self.clock.now()
        let activeFrom = now.addingTimeInterval(self.schedule.publication.timeInterval)
        let created = try Self.newKey(algorithm, encryption: encryption, now: now, activeFrom: activeFrom)
        let audit = AuditRecord(
            at: now, event: .keyCreated, actorId: actorId, origin: origin,
            details: ["kid": created.kid, "algorithm": algorithm.rawValue, "reason": reason, "activeFrom": iso(activeFrom)]
        )
        let schedule = self.schedule
        let decide: @Sendable ([StoredSigningKey]) -> Bool = { rows in !schedule.statuses(of: rows, now: now).contains { $0.state == .published } }
        guard try await self.store.addSigningKey(created, if: decide, audit: audit) else {
            let statuses = self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: now)
            let waiting = statuses.first { $0.state == .published }
            throw KeyChangeError.alreadyWaiting(kid: waiting?.key.kid ?? "?", activeFrom: waiting?.key.activeFrom ?? now)
        }
        await self.reloadAfterChange()
        self.logger.notice("signing key published", metadata: ["kid": "\(created.kid)", "activeFrom": "\(iso(activeFrom))"])
        return self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: now).first { $0.key.kid == created.kid }
            ?? KeyStatus(key: created, state: .published, signsUntil: nil, verifiesUntil: nil)
    }

    /// Takes a key out of service: a waiting key is withdrawn; the current key hands over to the waiting one now, or
    /// once that one has been published for the whole publication period if it has not yet (refused when none is
    /// waiting: rotate first). A retired key's tokens still verify until they expire. Returns when the handover is.
    @discardableResult
    public func retire(kid: String, actorId: UUID?, origin: RequestOrigin = RequestOrigin()) async throws -> Date {
        guard case .database(let algorithm, _) = self.source else { throw KeyChangeError.configuredSecrets }
        let now = self.clock.now()
        let statuses = self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: now)
        guard let status = statuses.first(where: { $0.key.kid == kid }) else { throw KeyChangeError.unknownKey(kid) }
        var successor: String?
        var handover = now
        switch status.state {
        case .published:
            break
        case .current:
            guard let waiting = statuses.filter({ $0.state == .published }).min(by: { $0.key.activeFrom < $1.key.activeFrom }) else {
                throw KeyChangeError.noSuccessor(kid: kid)
            }
            successor = waiting.key.kid
            // Not before the successor has been published for the whole period: every JWKS cache must hold it.
            handover = max(now, waiting.key.createdAt.addingTimeInterval(self.schedule.publication.timeInterval))
        case .retired, .expired, .revoked:
            throw KeyChangeError.notInService(kid: kid, state: status.state)
        }
        var details = ["kid": kid, "state": status.state.rawValue, "at": iso(handover)]
        if let successor { details["successor"] = successor }
        let keepSigning = status.state == .published ? Self.keyLeftWithoutSuccessor(removing: kid, from: statuses) : nil
        if let keepSigning { details["keepsSigning"] = keepSigning }
        let audit = AuditRecord(at: now, event: .keyRetired, actorId: actorId, origin: origin, details: details)
        try await self.store.retireSigningKey(kid: kid, at: handover, activate: successor, unretire: keepSigning, audit: audit)
        await self.reloadAfterChange()
        return handover
    }

    /// The emergency: every token signed with the key is refused on every instance at once (a `key` row in the log),
    /// and a key that was signing is replaced by a new one at once. Works for HS256 secrets' `kid`s too.
    @discardableResult
    public func revoke(kid: String, actorId: UUID?, reason: String?, origin: RequestOrigin = RequestOrigin()) async throws -> RevocationEntry {
        let now = self.clock.now()
        var replacement: StoredSigningKey?
        var keepSigning: String?
        switch self.source {
        case .secrets:
            guard self.ring.snapshot.key(kid: kid) != nil else { throw KeyChangeError.unknownKey(kid) }
        case .database(let algorithm, let encryption):
            let statuses = self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: now)
            guard let status = statuses.first(where: { $0.key.kid == kid }) else { throw KeyChangeError.unknownKey(kid) }
            if status.state == .revoked { throw KeyChangeError.notInService(kid: kid, state: .revoked) }
            let othersSigning = statuses.contains { $0.key.kid != kid && $0.state == .current }
            if status.state == .current || !othersSigning {
                replacement = try Self.newKey(algorithm, encryption: encryption, now: now, activeFrom: now)
            } else {
                keepSigning = Self.keyLeftWithoutSuccessor(removing: kid, from: statuses)
            }
        }
        var details = ["kid": kid]
        if let replacement { details["replacement"] = replacement.kid }
        if let reason { details["reason"] = reason }
        let audit = AuditRecord(at: now, event: .keyRevoked, actorId: actorId, origin: origin, details: details)
        let entry = try await self.store.revokeSigningKey(
            kid: kid, at: now, actorId: actorId, reason: reason, replacement: replacement, unretire: keepSigning, audit: audit
        )
        self.index.apply([entry], now: now)
        // The same series as the service's other revocations (``ServiceMetrics``); a key revoke is rare enough to
        // look it up by name.
        Counter(label: "tessera_revocations_total", dimensions: [("kind", RevocationIndex.Cut.key.rawValue)]).increment()
        await self.reloadAfterChange()
        self.logger.warning("signing key revoked", metadata: ["kid": "\(kid)", "replacement": "\(replacement?.kid ?? "-")"])
        return entry
    }

    // MARK: Maintenance

    /// One round: rotate when the schedule says so, destroy private halves no longer needed, read the keys again.
    public func maintain() async throws {
        guard case .database(let algorithm, _) = self.source else { return }
        _ = try await self.store.database.exclusively("signing keys") {
            let now = self.clock.now()
            let statuses = self.schedule.statuses(of: try await self.store.signingKeys(algorithm: algorithm), now: now)
            if let rotation = self.schedule.rotation, !statuses.contains(where: { $0.state == .published }),
                let current = statuses.last(where: { $0.state == .current }),
                now >= current.key.activeFrom.addingTimeInterval(rotation.timeInterval - self.schedule.publication.timeInterval)
            {
                _ = try await self.rotate(actorId: nil, reason: "scheduled")
            }
            let spent = statuses.filter { ($0.state == .expired || $0.state == .revoked) && $0.key.sealedPrivateKey != nil }.map(\.key.kid)
            if !spent.isEmpty {
                try await self.store.destroySigningKeys(kids: spent, at: now)
                self.logger.notice("private halves of spent signing keys destroyed", metadata: ["kids": "\(spent.joined(separator: ","))"])
            }
        }
        try await self.reload()
    }
}

/// A key change that cannot be made, with a message for the operator.
public enum KeyChangeError: Error, Equatable, CustomStringConvertible {
    case configuredSecrets
    case alreadyWaiting(kid: String, activeFrom: Date)
    case unknownKey(String)
    case noSuccessor(kid: String)
    case notInService(kid: String, state: KeyState)

    public var description: String {
        switch self {
        case .configuredSecrets:
            "HS256 keys are secrets in the configuration: put a new secret in JWT_SECRET and the old one in JWT_PREVIOUS_SECRETS, then restart"
        case .alreadyWaiting(let kid, let activeFrom):
            "key \(kid) is already published and becomes current at \(iso(activeFrom)); retire it first to publish another"
        case .unknownKey(let kid): "there is no signing key \(kid)"
        case .noSuccessor(let kid): "key \(kid) is the only key that signs: rotate first, then retire it (or revoke it if it leaked)"
        case .notInService(let kid, let state): "key \(kid) is \(state.rawValue) already"
        }
    }
}

func iso(_ date: Date) -> String {
    date.formatted(.iso8601)
}
