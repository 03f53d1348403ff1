import Foundation
import Synchronization

/// The in-memory view of the revocation log that every token check reads.
///
/// A token is revoked iff `jti ∈ tokens ∨ sid ∈ sessions ∨ ver < acceptedFrom[sub] ∨ epoch < globalEpoch`:
/// four hash look-ups under one uncontended lock, no I/O. Rows may arrive twice or out of order (a write applied
/// locally before the follower reads it back); subject and global rows carry the `seq` that set them so that an
/// older row never overrides a newer one.
public final class RevocationIndex: Sendable {
    struct Cutoff: Sendable {
        var value: Int64
        var seq: Int64
    }

    struct State: Sendable {
        var tokens: [UUID: Int64] = [:]
        var sessions: [UUID: Int64] = [:]
        var subjects: [UUID: Cutoff] = [:]
        var global = Cutoff(value: 0, seq: 0)
        var lastAppliedSeq: Int64 = 0
        var lastSyncedAt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// How long the index may go without hearing from the log before checks fail closed.
    public let stalenessBound: Duration

    /// - Parameter stalenessBound: how long the index stays trusted after the last successful read of the log.
    public init(stalenessBound: Duration = .seconds(5)) {
        self.stalenessBound = stalenessBound
    }

    /// Whether a verified token has been taken back. No I/O.
    public func isRevoked(_ token: VerifiedAccessToken) -> Bool {
        self.isRevoked(jti: token.jti, sessionId: token.sessionId, userId: token.userId, version: token.version, epoch: token.epoch)
    }

    /// Whether a token with these claims has been taken back. No I/O.
    public func isRevoked(jti: UUID, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64) -> Bool {
        self.state.withLock { $0.cuts(jti: jti, sessionId: sessionId, userId: userId, version: version, epoch: epoch) }
    }

    /// What the index says of a verified token: accepted, revoked, or nothing to go on because the index has not
    /// heard from the log within its bound (fail closed).
    public enum Verdict: Sendable, Equatable {
        case accepted
        case revoked
        case stale
    }

    /// Freshness and revocation in one look under the lock: the per-request question of a protected route.
    public func verdict(for token: VerifiedAccessToken, at instant: ContinuousClock.Instant = .now) -> Verdict {
        self.state.withLock { state in
            guard let synced = state.lastSyncedAt, synced.duration(to: instant) <= self.stalenessBound else { return .stale }
            let cut = state.cuts(jti: token.jti, sessionId: token.sessionId, userId: token.userId, version: token.version, epoch: token.epoch)
            return cut ? .revoked : .accepted
        }
    }

    /// Whether a session (for a refresh) is still accepted at the given version and epoch.
    public func isSessionAccepted(sessionId: UUID, userId: UUID, version: Int64, epoch: Int64) -> Bool {
        self.state.withLock { state in
            if epoch < state.global.value { return false }
            if let cutoff = state.subjects[userId], version < cutoff.value { return false }
            return state.sessions[sessionId] == nil
        }
    }

    /// Applies log rows; rows already seen or superseded are harmless. Entries whose tokens expired are skipped.
    public func apply(_ entries: some Sequence<RevocationEntry>, now: Date = Date()) {
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        self.state.withLock { state in
            for entry in entries {
                switch entry.kind {
                case .token(let jti, let until):
                    let expiry = Int64(until.timeIntervalSince1970.rounded(.up))
                    if expiry >= nowSeconds { state.tokens[jti] = expiry }
                case .session(let id, let until):
                    let expiry = Int64(until.timeIntervalSince1970.rounded(.up))
                    if expiry >= nowSeconds { state.sessions[id] = expiry }
                case .subject(let userId, let acceptedFrom):
                    if let current = state.subjects[userId], current.seq >= entry.seq { break }
                    state.subjects[userId] = Cutoff(value: acceptedFrom, seq: entry.seq)
                case .global(let epoch):
                    if state.global.seq >= entry.seq { break }
                    state.global = Cutoff(value: epoch, seq: entry.seq)
                }
            }
        }
    }

    /// Applies rows read from the log by the follower and advances its cursor past `throughSeq`.
    public func applyFromLog(_ entries: [RevocationEntry], throughSeq: Int64, now: Date = Date()) {
        self.apply(entries, now: now)
        self.state.withLock { state in
            state.lastAppliedSeq = max(state.lastAppliedSeq, throughSeq)
        }
    }

    /// The highest `seq` the follower has read from the log.
    public var lastAppliedSeq: Int64 {
        self.state.withLock { $0.lastAppliedSeq }
    }

    /// Records that the log was read successfully just now.
    public func markSynced(at instant: ContinuousClock.Instant = .now) {
        self.state.withLock { $0.lastSyncedAt = instant }
    }

    /// Whether the index has heard from the log within the staleness bound; if not, checks must fail closed.
    public func isCurrent(at instant: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            guard let synced = state.lastSyncedAt else { return false }
            return synced.duration(to: instant) <= self.stalenessBound
        }
    }

    /// Drops token and session entries whose tokens can no longer be valid anyway. Returns how many went.
    @discardableResult
    public func prune(now: Date = Date()) -> Int {
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        return self.state.withLock { state in
            let before = state.tokens.count + state.sessions.count
            state.tokens = state.tokens.filter { $0.value >= nowSeconds }
            state.sessions = state.sessions.filter { $0.value >= nowSeconds }
            return before - state.tokens.count - state.sessions.count
        }
    }

    /// Sizes, for metrics and tests.
    public var counts: (tokens: Int, sessions: Int, subjects: Int, globalEpoch: Int64) {
        self.state.withLock { ($0.tokens.count, $0.sessions.count, $0.subjects.count, $0.global.value) }
    }
}

extension RevocationIndex.State {
    /// The four look-ups: any cut that covers a token with these claims.
    func cuts(jti: UUID, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64) -> Bool {
        if epoch < self.global.value { return true }
        if let cutoff = self.subjects[userId], version < cutoff.value { return true }
        if self.sessions[sessionId] != nil { return true }
        return self.tokens[jti] != nil
    }
}
