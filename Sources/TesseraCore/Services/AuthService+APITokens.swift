import Foundation
import Synchronization
import TesseraTokens

/// Personal API tokens: long-lived opaque bearer tokens for scripts and CI, checked on every bearer route.
///
/// A token seen before on this instance is checked with no I/O: its record is remembered (``APITokenCache``) and
/// the index decides, as for an access token, whether a cut refuses it (its own `token` row, its user's cut-off,
/// everyone's). Its first use on an instance reads the database once. A made-up token is refused by its checksum
/// without any I/O; one with a valid checksum that no one was given costs one read, and is then remembered as
/// unknown (a bounded set), so repeating it costs nothing more. When it was last used is written in batches.
extension AuthService {
    /// The most characters of a token's name.
    public static let maximumAPITokenNameLength = 100
    /// The longest an API token may live: a revoked one is an entry in every instance's index until it expires.
    public static let maximumAPITokenDays = 365

    /// Makes a token for a user; the secret is returned once and never stored.
    public func createAPIToken(
        userId: UUID, name: String, days: Int?, actorId: UUID?, origin: RequestOrigin
    ) async throws -> (token: String, record: APITokenRecord) {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= Self.maximumAPITokenNameLength,
            !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format })
        else {
            throw AuthError.invalidArgument("name must be 1 to \(Self.maximumAPITokenNameLength) characters, without control characters")
        }
        let lifetime = days ?? self.settings.apiTokenDays
        guard (1...Self.maximumAPITokenDays).contains(lifetime) else {
            throw AuthError.invalidArgument("expiresInDays must be a whole number of days from 1 to \(Self.maximumAPITokenDays)")
        }
        let now = self.clock.now()
        let token = APIToken.generate()
        let new = NewAPIToken(
            userId: userId, name: trimmed, tokenHash: APIToken.hash(token), createdAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(lifetime) * 86_400), origin: origin
        )
        let audit = AuditRecord(
            at: now, event: .apiTokenCreated, actorId: actorId ?? userId, subjectId: userId, origin: origin,
            details: ["tokenId": new.id.lowercasedString, "name": trimmed, "expiresInDays": String(lifetime)]
        )
        let record = try await self.store.createAPIToken(new, audit: audit)
        self.logger.info("API token created", metadata: ["user": "\(userId.lowercasedString)", "apiToken": "\(record.id.lowercasedString)"])
        return (token, record)
    }

    /// A user's tokens, newest first, with whether each is still accepted here.
    public func apiTokens(userId: UUID) async throws -> [(record: APITokenRecord, active: Bool)] {
        let now = self.clock.now()
        return try await self.store.apiTokens(userId: userId).map { record in
            (record, record.invalidatedAt == nil && !record.cutByAccount && record.expiresAt > now && !self.index.isRevoked(record.caller))
        }
    }

    /// Revokes one token: the row keeps `invalidated_at` for the audit trail and a `token` row in the log makes
    /// every instance refuse it. `owner` limits it to one user's tokens (the holder's own route); nil is an
    /// operator's. Throws ``AuthError/apiTokenNotFound`` for a token that is not there, not the owner's, or revoked
    /// already.
    public func revokeAPIToken(id: UUID, owner: UUID?, actorId: UUID?, origin: RequestOrigin) async throws {
        guard let record = try await self.store.apiToken(id: id), owner == nil || record.userId == owner else { throw AuthError.apiTokenNotFound }
        let now = self.clock.now()
        let audit = AuditRecord(
            at: now, event: .apiTokenRevoked, actorId: actorId, subjectId: record.userId, origin: origin,
            details: ["tokenId": id.lowercasedString, "name": record.name]
        )
        let request = RevocationRequest(target: .token(id, until: record.expiresAt), cause: .tokenRevoked, actorId: actorId, reason: nil, at: now, audit: [audit])
        guard let outcome = try await self.store.revokeAPIToken(id: id, request: request) else { throw AuthError.apiTokenNotFound }
        self.index.apply(outcome.entries, now: now)
        self.metrics.countRevocations(outcome.entries)
        self.logger.info("API token revoked", metadata: ["apiToken": "\(id.lowercasedString)"])
    }

    /// The caller an API token stands for, or why not. Checks the checksum first (no I/O), then the remembered
    /// record or one read, then expiry and the index (its own row, its user's and everyone's cuts), as for an
    /// access token. Counted with the token checks.
    public func authenticate(apiToken token: some StringProtocol) async throws -> VerifiedAccessToken {
        guard APIToken.isWellFormed(token) else {
            self.metrics.tokenChecks.countInvalid(reason: "malformed")
            throw AuthError.invalidToken(reason: "not an API token of ours")
        }
        let hash = APIToken.hash(token)
        let record: APITokenRecord
        switch self.apiTokenCache.lookUp(hash) {
        case .known(let known):
            record = known
        case .aged:
            guard let stored = try await self.store.apiToken(hash: hash) else { throw AuthError.invalidToken(reason: "unknown API token") }
            self.apiTokenCache.remember(stored, hash: hash)
            record = stored
        case .unknown:
            self.metrics.tokenChecks.countInvalid(reason: "unknown api token")
            throw AuthError.invalidToken(reason: "unknown API token")
        case .notSeen:
            // The checksum is public: anyone can make well-formed tokens, each a read. Reads for tokens not seen
            // here are rationed; past the ration the answer is 503 and a retry, never a 401 a client would believe.
            guard self.apiTokenCache.admitRead() else { throw AuthError.busy(retryAfterSeconds: 1) }
            guard let stored = try await self.store.apiToken(hash: hash) else {
                self.apiTokenCache.rememberUnknown(hash)
                self.metrics.tokenChecks.countInvalid(reason: "unknown api token")
                throw AuthError.invalidToken(reason: "unknown API token")
            }
            self.apiTokenCache.remember(stored, hash: hash)
            record = stored
        }
        let now = self.clock.now()
        guard record.expiresAt > now else {
            self.metrics.tokenChecks.countInvalid(reason: "expired")
            throw AuthError.invalidToken(reason: "expired")
        }
        guard !record.cutByAccount else {
            // Cut with its user long ago (the index has let go of that cut-off) or the account is gone.
            self.metrics.tokenChecks.countRevoked(by: .subject)
            throw AuthError.tokenRevoked
        }
        let caller = record.caller
        switch self.index.verdict(for: caller) {
        case .accepted:
            self.metrics.tokenChecks.countAccepted()
            self.apiTokenCache.markUsed(record.id, at: now)
            return caller
        case .revoked:
            self.metrics.tokenChecks.countRevoked(by: self.index.cuts(of: caller).first)
            throw AuthError.tokenRevoked
        case .stale:
            self.metrics.tokenChecks.countStale()
            throw AuthError.revocationIndexStale
        }
    }

    /// Writes the last-use times gathered since the previous call (every few seconds, and at shutdown).
    public func flushAPITokenUse() async throws {
        let uses = self.apiTokenCache.takeUses()
        guard !uses.isEmpty else { return }
        do {
            try await self.store.recordAPITokenUse(uses)
        } catch {
            // Kept for the next flush: a last-use time is worth a retry, not a lost request.
            self.apiTokenCache.restoreUses(uses)
            throw error
        }
    }
}

/// What an instance remembers of API tokens: records by hash (a token's state lives in the index, so a record
/// never goes stale, only its revocation arrives through the log), hashes known to be no token (safe to remember:
/// no one presents a 256-bit secret before it is made), and last-use times
/// not yet written. Each part is bounded: past its bound, entries are dropped (a dropped record costs one more read).
public final class APITokenCache: Sendable {
    enum LookUp {
        case known(APITokenRecord)
        /// Known, but read long enough ago to be read again (not rationed: it is a real token).
        case aged
        case unknown
        case notSeen
    }

    struct State {
        var known: [String: (record: APITokenRecord, readAt: ContinuousClock.Instant)] = [:]
        var unknown: Set<String> = []
        /// The unknown hashes in the order they came, as a ring: the oldest is overwritten.
        var unknownRing: [String] = []
        var unknownNext = 0
        var uses: [UUID: Date] = [:]
        /// Reads left in this second for tokens not seen here.
        var reads = 0
        var readsSecond: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    let capacity: Int
    let unknownCapacity: Int
    /// A record is read again after this long: what the database says of its account (a cut-off the index has
    /// let go of, a deletion) reaches a token in use within it. Well under the index's cut-off lifetime.
    let lifetime: Duration
    /// Reads a second for tokens not seen on this instance.
    let readsPerSecond: Int

    public init(capacity: Int = 100_000, unknownCapacity: Int = 10_000, lifetime: Duration = .seconds(600), readsPerSecond: Int = 1_000) {
        self.capacity = capacity
        self.unknownCapacity = unknownCapacity
        self.lifetime = lifetime
        self.readsPerSecond = readsPerSecond
    }

    func lookUp(_ hash: String, at now: ContinuousClock.Instant = .now) -> LookUp {
        self.state.withLock { state in
            if let known = state.known[hash] {
                return known.readAt.duration(to: now) < self.lifetime ? .known(known.record) : .aged
            }
            return state.unknown.contains(hash) ? .unknown : .notSeen
        }
    }

    func remember(_ record: APITokenRecord, hash: String, at now: ContinuousClock.Instant = .now) {
        self.state.withLock { state in
            if state.known.count >= self.capacity, let first = state.known.keys.first { state.known[first] = nil }
            state.known[hash] = (record, now)
        }
    }

    func rememberUnknown(_ hash: String) {
        self.state.withLock { state in
            guard !state.unknown.contains(hash) else { return }
            if state.unknownRing.count < self.unknownCapacity {
                state.unknownRing.append(hash)
            } else {
                state.unknown.remove(state.unknownRing[state.unknownNext])
                state.unknownRing[state.unknownNext] = hash
                state.unknownNext = (state.unknownNext + 1) % self.unknownCapacity
            }
            state.unknown.insert(hash)
        }
    }

    /// Whether one more read for a token not seen here fits in this second's ration.
    func admitRead(at now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            if let second = state.readsSecond, second.duration(to: now) < .seconds(1) {
                guard state.reads < self.readsPerSecond else { return false }
                state.reads += 1
                return true
            }
            state.readsSecond = now
            state.reads = 1
            return true
        }
    }

    func markUsed(_ id: UUID, at date: Date) {
        self.state.withLock { state in
            // Bounded by the tokens known here: one entry per token, the latest time.
            state.uses[id] = date
        }
    }

    func takeUses() -> [UUID: Date] {
        self.state.withLock { state in
            let uses = state.uses
            state.uses = [:]
            return uses
        }
    }

    func restoreUses(_ uses: [UUID: Date]) {
        self.state.withLock { state in
            state.uses.merge(uses) { max($0, $1) }
        }
    }
}
