import Foundation
import Synchronization

/// The in-memory view of the revocation log that every token check reads.
///
/// A token is revoked iff `jti ∈ tokens ∨ sid ∈ sessions ∨ ver < acceptedFrom[sub] ∨ epoch < globalEpoch`:
/// four hash look-ups under one uncontended lock, no I/O. Rows may arrive twice or out of order (a write applied
/// locally before the follower reads it back); subject and global rows carry the `seq` that set them so that an
/// older row never overrides a newer one, and a token or session entry is only ever kept longer, never shorter.
///
/// A user's cut-off leaves memory (never the database) once it can no longer cut anything: every token and session
/// issued before it has expired, `cutoffLifetime` after it was written (refresh lifetime plus access lifetime plus
/// grace). Without that, ten million users who each once changed a password cost ~840 MB in every instance; with it,
/// memory follows the cut-offs of the last refresh lifetime.
///
/// Pruning goes in slices of at most `pruneSliceSize` entries per hold of the lock and visits only entries whose
/// second has passed (`ExpiringIds`), so that dropping a million expired entries never stalls the requests that
/// take the same lock.
public final class RevocationIndex: Sendable {
    struct Cutoff: Sendable {
        var value: Int64
        var seq: Int64
    }

    struct State: Sendable {
        var tokens = ExpiringIds()
        var sessions = ExpiringIds()
        var subjects: [UUID: Cutoff] = [:]
        /// When each subject cut-off in `subjects` stops mattering (only with a `cutoffLifetime`).
        var subjectExpiry = ExpiringIds()
        var global = Cutoff(value: 0, seq: 0)
        /// Keys whose every token is refused (a handful at most, kept for ever).
        var keys: Set<String> = []
        var lastAppliedSeq: Int64 = 0
        var lastSyncedAt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// At most this many entries are examined under one hold of the lock while pruning: each is a random read of a
    /// large table, ~0.3 µs on the project machine, so a request waits a few hundred microseconds at most.
    static let pruneSliceSize = 1024
    /// How long the index may go without hearing from the log before checks fail closed.
    public let stalenessBound: Duration
    /// How long after it was written a subject cut-off can still cut a token: nil keeps them for ever.
    public let cutoffLifetime: Duration?

    /// - Parameters:
    ///   - stalenessBound: how long the index stays trusted after the last successful read of the log.
    ///   - cutoffLifetime: how long after it was written a user's cut-off can still refuse anything: the refresh
    ///     lifetime plus the access lifetime (plus grace for clock skew). Older cut-offs leave memory.
    public init(stalenessBound: Duration = .seconds(5), cutoffLifetime: Duration? = nil) {
        self.stalenessBound = stalenessBound
        self.cutoffLifetime = cutoffLifetime
    }

    /// Whether a verified token has been taken back. No I/O.
    public func isRevoked(_ token: VerifiedAccessToken) -> Bool {
        self.isRevoked(jti: token.jti, sessionId: token.sessionId, userId: token.userId, version: token.version, epoch: token.epoch, keyId: token.keyId)
    }

    /// Whether a token with these claims has been taken back. No I/O.
    public func isRevoked(jti: UUID, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64, keyId: String = "") -> Bool {
        self.state.withLock { $0.cuts(jti: jti, sessionId: sessionId, userId: userId, version: version, epoch: epoch, keyId: keyId) }
    }

    /// Whether every token signed with this key is refused.
    public func isKeyRevoked(_ kid: String) -> Bool {
        self.state.withLock { $0.keys.contains(kid) }
    }

    /// The keys whose tokens are refused.
    public var revokedKeys: Set<String> {
        self.state.withLock { $0.keys }
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
            let cut = state.cuts(
                jti: token.jti, sessionId: token.sessionId, userId: token.userId, version: token.version, epoch: token.epoch, keyId: token.keyId
            )
            return cut ? .revoked : .accepted
        }
    }

    /// Which cuts of the index refuse a token, the narrowest first (this token, its session, its user, everyone,
    /// its key); empty when none does. For explaining a refusal and counting refusals by cause: never on the path
    /// of an accepted token.
    public func cuts(of token: VerifiedAccessToken) -> [Cut] {
        self.cuts(jti: token.jti, sessionId: token.sessionId, userId: token.userId, version: token.version, epoch: token.epoch, keyId: token.keyId)
    }

    /// ``cuts(of:)`` for claims: a refresh token's session has no `jti` and no key.
    public func cuts(jti: UUID?, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64, keyId: String?) -> [Cut] {
        self.state.withLock { state in
            var found: [Cut] = []
            if let jti, state.tokens.contains(jti) { found.append(.token) }
            if state.sessions.contains(sessionId) { found.append(.session) }
            if let cutoff = state.subjects[userId], version < cutoff.value { found.append(.subject) }
            if epoch < state.global.value { found.append(.global) }
            if let keyId, state.keys.contains(keyId) { found.append(.key) }
            return found
        }
    }

    /// A kind of cut that can refuse a token, named as the log names its rows.
    public enum Cut: String, Sendable, CaseIterable {
        case token, session, subject, global, key
    }

    /// Whether a session (for a refresh) is still accepted at the given version and epoch.
    public func isSessionAccepted(sessionId: UUID, userId: UUID, version: Int64, epoch: Int64) -> Bool {
        self.state.withLock { state in
            if epoch < state.global.value { return false }
            if let cutoff = state.subjects[userId], version < cutoff.value { return false }
            return !state.sessions.contains(sessionId)
        }
    }

    /// Applies log rows; rows already seen or superseded are harmless. Entries whose tokens expired are skipped.
    public func apply(_ entries: some Sequence<RevocationEntry>, now: Date = Date()) {
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let lifetime = self.cutoffLifetime.map { $0.components.seconds }
        self.state.withLock { state in
            for entry in entries {
                state.apply(entry, nowSeconds: nowSeconds, cutoffLifetime: lifetime)
            }
        }
    }

    /// Applies rows read from the log by the follower and records the highest `seq` among them.
    public func applyFromLog(_ entries: [RevocationEntry], throughSeq: Int64, now: Date = Date()) {
        self.apply(entries, now: now)
        self.state.withLock { state in
            state.lastAppliedSeq = max(state.lastAppliedSeq, throughSeq)
        }
    }

    /// Replaces the users' and the global cut-offs with what a whole read of the log says (after the database was
    /// restored or failed over, when rows it once had may be gone, and a cut-off that was undone there must not stay
    /// here). Single tokens and sessions already cut stay cut: their ids are random and never come back, and a
    /// sign-out acknowledged before an asynchronous standby was promoted must not be revived by the failover.
    /// Freshness is kept: the caller marks the index synced when it is done.
    public func replace(with entries: [RevocationEntry], now: Date = Date()) {
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let lifetime = self.cutoffLifetime.map { $0.components.seconds }
        var fresh = State()
        for entry in entries {
            switch entry.kind {
            case .subject, .global, .key: fresh.apply(entry, nowSeconds: nowSeconds, cutoffLifetime: lifetime)
            case .token, .session: break
            }
        }
        fresh.lastAppliedSeq = entries.map(\.seq).max() ?? 0
        let replaced = self.state.withLock { state -> State in
            fresh.lastSyncedAt = state.lastSyncedAt
            fresh.tokens = state.tokens
            fresh.sessions = state.sessions
            // A revoked key stays revoked: it leaked, and no restore of the database makes it safe again.
            fresh.keys.formUnion(state.keys)
            for entry in entries {
                switch entry.kind {
                case .token, .session: fresh.apply(entry, nowSeconds: nowSeconds, cutoffLifetime: lifetime)
                case .subject, .global, .key: break
                }
            }
            state.tokens = ExpiringIds()
            state.sessions = ExpiringIds()
            swap(&state, &fresh)
            return fresh
        }
        _ = replaced  // the old tables are freed here, outside the lock
    }

    /// The highest `seq` the follower has read from the log.
    public var lastAppliedSeq: Int64 {
        self.state.withLock { $0.lastAppliedSeq }
    }

    /// Records that the log was read successfully at `instant` (just now, by default). Never moves back: a guarded
    /// service marks the moment its source's index was current, which an earlier answer may put later.
    public func markSynced(at instant: ContinuousClock.Instant = .now) {
        self.state.withLock { state in
            if let synced = state.lastSyncedAt, synced >= instant { return }
            state.lastSyncedAt = instant
        }
    }

    /// Records that what the index holds was current at `instant`, even if an earlier mark said later: for a guarded
    /// service whose state was just replaced by a snapshot, which may come from an instance behind the one it read
    /// before.
    public func resetSynced(to instant: ContinuousClock.Instant) {
        self.state.withLock { $0.lastSyncedAt = instant }
    }

    /// How long ago the index last heard from the log; nil if it never has.
    public func age(at instant: ContinuousClock.Instant = .now) -> Duration? {
        self.state.withLock { state in state.lastSyncedAt.map { $0.duration(to: instant) } }
    }

    /// Forgets whether it has heard from the log: checks fail closed until ``markSynced(at:)`` (a guarded service
    /// that met a row it cannot read).
    public func markUnsynced() {
        self.state.withLock { $0.lastSyncedAt = nil }
    }

    /// Every cut the index holds, as log rows: what a new follower of this instance needs (the revocation feed's
    /// snapshot). Token and session rows carry their `until`; user and global rows the `seq` that set them; no row
    /// carries its actor or reason. Rows of tokens that can no longer be valid have been pruned or are harmless.
    public func liveEntries(now: Date = Date()) -> [RevocationEntry] {
        let lifetime = self.cutoffLifetime?.timeInterval
        // A copy of the tables (copy-on-write: nothing is copied here) so that the rows are built outside the lock every
        // check takes; the next write to a table copies it once, a fraction of the time building its rows takes.
        let state = self.state.withLock { $0 }
        func row(_ kind: RevocationKind, seq: Int64 = 0, at revokedAt: Date = now) -> RevocationEntry {
            RevocationEntry(seq: seq, kind: kind, revokedAt: revokedAt, actorId: nil, reason: nil)
        }
        var entries: [RevocationEntry] = []
        entries.reserveCapacity(state.tokens.count + state.sessions.count + state.subjects.count + state.keys.count + 1)
        for (jti, second) in state.tokens.keptUntil {
            entries.append(row(.token(jti: jti, until: Date(timeIntervalSince1970: TimeInterval(second)))))
        }
        for (id, second) in state.sessions.keptUntil {
            entries.append(row(.session(id: id, until: Date(timeIntervalSince1970: TimeInterval(second)))))
        }
        for (userId, cutoff) in state.subjects {
            // The time it was written, as far as pruning needs it: when it stops mattering, less its lifetime.
            let forgetAt = state.subjectExpiry.keptUntil[userId]
            let revokedAt = forgetAt.flatMap { second in lifetime.map { Date(timeIntervalSince1970: TimeInterval(second) - $0) } } ?? now
            entries.append(row(.subject(userId: userId, acceptedFromVersion: cutoff.value), seq: cutoff.seq, at: revokedAt))
        }
        if state.global.seq > 0 { entries.append(row(.global(epoch: state.global.value), seq: state.global.seq)) }
        for kid in state.keys.sorted() { entries.append(row(.key(kid: kid))) }
        return entries
    }

    /// Whether the index has heard from the log within the staleness bound; if not, checks must fail closed.
    public func isCurrent(at instant: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            guard let synced = state.lastSyncedAt else { return false }
            return synced.duration(to: instant) <= self.stalenessBound
        }
    }

    /// Drops token and session entries whose tokens can no longer be valid anyway. Returns how many went.
    ///
    /// Works in slices of at most `pruneSliceSize` entries, releasing the lock between them, so requests wait for
    /// one slice at most; storage it lets go of is freed after the lock is released.
    @discardableResult
    public func prune(now: Date = Date()) -> Int {
        self.prune(now: now, sliceSize: Self.pruneSliceSize) { _ in }
    }

    /// ``prune(now:)`` with the slice size given and `afterSlice` told, with the lock released, how many entries the
    /// slice examined under it (for tests).
    func prune(now: Date, sliceSize: Int, afterSlice: (_ examined: Int) -> Void) -> Int {
        precondition(sliceSize > 0, "a slice must examine at least one entry")
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        var removed = 0
        while true {
            var slice = ExpiringIds.Slice(budget: sliceSize)
            let unfinished = self.state.withLock { state in
                state.tokens.prune(before: nowSeconds, in: &slice)
                state.sessions.prune(before: nowSeconds, in: &slice)
                state.pruneSubjects(before: nowSeconds, in: &slice)
                return state.tokens.hasWork(before: nowSeconds, sliceSize: sliceSize)
                    || state.sessions.hasWork(before: nowSeconds, sliceSize: sliceSize)
                    || state.subjectExpiry.hasWork(before: nowSeconds, sliceSize: sliceSize)
            }
            removed += slice.removed
            afterSlice(slice.examined)
            slice.discarded.removeAll()  // the storage let go of in that slice, freed here rather than under the lock
            if !unfinished { return removed }
        }
    }

    /// Sizes, for metrics and tests.
    public var counts: (tokens: Int, sessions: Int, subjects: Int, globalEpoch: Int64) {
        self.state.withLock { ($0.tokens.count, $0.sessions.count, $0.subjects.count, $0.global.value) }
    }
}

extension RevocationIndex.State {
    mutating func apply(_ entry: RevocationEntry, nowSeconds: Int64, cutoffLifetime: Int64?) {
        switch entry.kind {
        case .token(let jti, let until):
            let expiry = Int64(until.timeIntervalSince1970.rounded(.up))
            if expiry >= nowSeconds { self.tokens.keep(jti, until: expiry) }
        case .session(let id, let until):
            let expiry = Int64(until.timeIntervalSince1970.rounded(.up))
            if expiry >= nowSeconds { self.sessions.keep(id, until: expiry) }
        case .subject(let userId, let acceptedFrom):
            if let current = self.subjects[userId], current.seq >= entry.seq { break }
            guard let lifetime = cutoffLifetime else {
                self.subjects[userId] = RevocationIndex.Cutoff(value: acceptedFrom, seq: entry.seq)
                break
            }
            let forgetAt = Int64(entry.revokedAt.timeIntervalSince1970.rounded(.up)) + lifetime
            if forgetAt < nowSeconds {
                // The latest cut of this user is older than any token it could refuse: so is every earlier one.
                self.subjects[userId] = nil
                break
            }
            self.subjects[userId] = RevocationIndex.Cutoff(value: acceptedFrom, seq: entry.seq)
            self.subjectExpiry.keep(userId, until: forgetAt)
        case .global(let epoch):
            if self.global.seq >= entry.seq { break }
            self.global = RevocationIndex.Cutoff(value: epoch, seq: entry.seq)
        case .key(let kid):
            self.keys.insert(kid)
        }
    }

    /// Drops the cut-offs of users whose latest cut can no longer refuse anything.
    mutating func pruneSubjects(before now: Int64, in slice: inout RevocationIndex.ExpiringIds.Slice) {
        guard !slice.isSpent else { return }
        let before = slice.removedIds.count
        slice.collectsRemovedIds = true
        self.subjectExpiry.prune(before: now, in: &slice)
        slice.collectsRemovedIds = false
        for id in slice.removedIds[before...] { self.subjects[id] = nil }
        slice.removedIds.removeAll(keepingCapacity: true)
    }

    /// The four look-ups (five once a key was revoked): any cut that covers a token with these claims.
    func cuts(jti: UUID, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64, keyId: String) -> Bool {
        if epoch < self.global.value { return true }
        if !self.keys.isEmpty, self.keys.contains(keyId) { return true }
        if let cutoff = self.subjects[userId], version < cutoff.value { return true }
        if self.sessions.contains(sessionId) { return true }
        return self.tokens.contains(jti)
    }
}

extension RevocationIndex {
    /// Token or session ids, each kept until a second, and the same ids filed by that second so that pruning visits
    /// only what expired instead of scanning everything.
    ///
    /// An id kept again until a later second is filed again there; its copy under the earlier second is passed over
    /// when that second is pruned, since only an id whose kept second has passed is removed.
    struct ExpiringIds: Sendable {
        /// Seconds since 1970 in 32 bits (8 bytes less per entry at a million), enough until 2106; a later second
        /// is clamped to the last one, which keeps the entry rather than dropping it early.
        private(set) var keptUntil: [UUID: UInt32] = [:]
        /// Never holds an empty list: a second is filed here iff it is in `seconds`.
        private var idsBySecond: [Int64: [UUID]] = [:]
        /// The keys of `idsBySecond` as a min-heap: the earliest second to prune is `seconds[0]`.
        private var seconds: [Int64] = []

        /// The work of one hold of the lock while pruning, and the storage it let go of, to be freed after it.
        struct Slice {
            var budget: Int
            var examined = 0
            var removed = 0
            var discarded: [any Sendable] = []
            /// Set while pruning subject expiries: the ids removed, so that their cut-offs go too.
            var collectsRemovedIds = false
            var removedIds: [UUID] = []

            var isSpent: Bool { self.examined >= self.budget }
        }

        var count: Int { self.keptUntil.count }

        func contains(_ id: UUID) -> Bool {
            self.keptUntil[id] != nil
        }

        /// Keeps `id` at least until `second`: a later second extends it, an earlier one changes nothing.
        mutating func keep(_ id: UUID, until second: Int64) {
            guard Self.extend(&self.keptUntil[id], to: UInt32(clamping: second)) else { return }
            self.idsBySecond[second, default: []].append(id)
            if self.idsBySecond[second]?.count == 1 { self.push(second) }
        }

        /// One probe of the table: the dictionary's entry is changed where it lies.
        private static func extend(_ kept: inout UInt32?, to second: UInt32) -> Bool {
            if let kept, kept >= second { return false }
            kept = second
            return true
        }

        /// Removes ids kept until before `now`, earliest second first, while the slice has budget; then gives back
        /// the table's room if expired ids left it mostly empty and the rebuild fits in the slice.
        mutating func prune(before now: Int64, in slice: inout Slice) {
            while !slice.isSpent, let second = self.seconds.first, second < now {
                var ids = self.idsBySecond.removeValue(forKey: second) ?? []
                while !slice.isSpent, let id = ids.popLast() {
                    slice.examined += 1
                    // One probe per id: these are random reads of a large table, each a cache miss or two.
                    if let position = self.keptUntil.index(forKey: id), Int64(self.keptUntil.values[position]) < now {
                        self.keptUntil.remove(at: position)
                        slice.removed += 1
                        if slice.collectsRemovedIds { slice.removedIds.append(id) }
                    }
                }
                if ids.isEmpty {
                    self.popEarliestSecond()
                    slice.discarded.append(ids)
                } else {
                    self.idsBySecond[second] = ids
                }
            }
            if !self.hasExpired(before: now), self.isOversized(sliceSize: slice.budget), slice.examined + self.count <= slice.budget {
                // A dictionary never shrinks by removals: after a burst of revocations has expired, rebuild it small.
                slice.examined += self.count
                slice.discarded.append(self.keptUntil)
                var smaller = [UUID: UInt32](minimumCapacity: self.count)
                for (id, second) in self.keptUntil { smaller[id] = second }
                self.keptUntil = smaller
            }
        }

        /// Whether pruning at `now` has anything left to do: expired ids, or a table to shrink.
        func hasWork(before now: Int64, sliceSize: Int) -> Bool {
            self.hasExpired(before: now) || self.isOversized(sliceSize: sliceSize)
        }

        private func hasExpired(before now: Int64) -> Bool {
            guard let earliest = self.seconds.first else { return false }
            return earliest < now
        }

        /// Room for eight times what is left (and for more than 8,192), with little enough left to rebuild in one slice.
        private func isOversized(sliceSize: Int) -> Bool {
            self.count <= sliceSize && self.keptUntil.capacity > 8 * Swift.max(self.count, 1024)
        }

        private mutating func push(_ second: Int64) {
            self.seconds.append(second)
            var child = self.seconds.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard self.seconds[child] < self.seconds[parent] else { return }
                self.seconds.swapAt(child, parent)
                child = parent
            }
        }

        private mutating func popEarliestSecond() {
            let last = self.seconds.removeLast()
            guard !self.seconds.isEmpty else { return }
            self.seconds[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                var smallest = parent
                if left < self.seconds.count, self.seconds[left] < self.seconds[smallest] { smallest = left }
                if left + 1 < self.seconds.count, self.seconds[left + 1] < self.seconds[smallest] { smallest = left + 1 }
                if smallest == parent { return }
                self.seconds.swapAt(parent, smallest)
                parent = smallest
            }
        }
    }
}
