import Synchronization

/// Tokens whose signature and claims were already checked.
///
/// A hit skips the HMAC and the parsing, never the checks that change with time: expiry, not-before and
/// revocation are checked on every request. Bounded without ever starting over: a token may lie in one of a few
/// slots (a set) chosen by its hash, and a new token in a full set replaces one that was not used since the set was
/// last passed over (second chance, as in CLOCK). A full cache forgets one token per new one, so live tokens never
/// all pay their HMAC again at the same moment, and memory stays flat whatever the traffic.
///
/// Looked up by the token's bytes where they lie (no `String` is made for a hit). The set is chosen by a seeded
/// hash of the signature — the last 43 characters, as random as a hash of the whole token, and hashing it instead
/// of ~450 bytes took a visible share off each request, inside the lock — and a hit needs every byte of the token
/// to match, compared in constant time. Only verified tokens are stored, so no one can choose what lies in a slot.
final class VerifiedTokenCache: Sendable {
    let capacity: Int
    /// Slots per set: four keep tokens that happen to share a set from evicting each other, and their tags fill one
    /// cache line.
    let ways: Int
    let setCount: Int
    private let table = Mutex(Table())

    struct Entry: Sendable {
        let token: [UInt8]
        let verified: VerifiedAccessToken
    }

    /// Where a token may lie: its hash as a tag, so that a look-up reads the entry only on a match.
    struct Slot: Sendable {
        var hash = 0
        /// Index in `Table.entries`, or -1 while the slot is free.
        var entry: Int32 = -1
        /// Set by a hit, cleared when an insert passes over the slot: an entry is replaced only if unused since.
        var used = false
    }

    /// `setCount * ways` slots, set `s` at `s * ways ..< (s + 1) * ways`, pointing into `entries`, which are dense
    /// (a hit reads memory in proportion to the tokens kept, not to the capacity) and replaced in place once full.
    /// Made on the first insert, outside the lock; the room for the entries is reserved, not written.
    struct Table: Sendable {
        var slots: [Slot] = []
        var entries: [Entry] = []
        /// Where an insert into a full set starts looking, turned by each one so that no slot is always first.
        var hand = 0

        init() {}

        init(slotCount: Int) {
            self.slots = Array(repeating: Slot(), count: slotCount)
            self.entries.reserveCapacity(slotCount)
        }
    }

    /// - Parameter capacity: at most this many tokens are kept (rounded down to whole sets).
    init(capacity: Int = 65_536) {
        precondition(capacity > 0 && capacity <= Int(Int32.max), "a cache holds at least one token")
        self.capacity = capacity
        self.ways = min(4, capacity)
        self.setCount = capacity / self.ways
    }

    /// How many tokens are kept now (for tests).
    var count: Int {
        self.table.withLock { $0.entries.count }
    }

    func lookup(_ token: UnsafeBufferPointer<UInt8>) -> VerifiedAccessToken? {
        let hash = Self.hash(of: token)
        let first = self.firstSlot(of: hash)
        return self.table.withLock { table in
            guard !table.slots.isEmpty else { return nil }
            for slot in first..<(first + self.ways) {
                let candidate = table.slots[slot]
                guard candidate.entry >= 0, candidate.hash == hash else { continue }
                let entry = table.entries[Int(candidate.entry)]
                guard Self.constantTimeEqual(entry.token, token) else { continue }
                if !candidate.used { table.slots[slot].used = true }
                return entry.verified
            }
            return nil
        }
    }

    func insert(_ token: UnsafeBufferPointer<UInt8>, _ verified: VerifiedAccessToken) {
        let hash = Self.hash(of: token)
        let entry = Entry(token: Array(token), verified: verified)
        let first = self.firstSlot(of: hash)
        // Made once, outside the lock, so that no request waits for it; a racing insert's table is dropped. Swapped
        // in rather than copied, so that the table stays uniquely referenced and is changed in place.
        var fresh = self.table.withLock { $0.slots.isEmpty } ? Table(slotCount: self.setCount * self.ways) : nil
        let replaced = self.table.withLock { table -> Entry? in
            if table.slots.isEmpty, fresh != nil { swap(&table, &fresh!) }
            return table.place(entry, hash: hash, inSetFrom: first, ways: self.ways)
        }
        _ = replaced  // released here, after the lock
    }

    /// The set from the hash's high bits (a multiply, not a division).
    func firstSlot(of hash: Int) -> Int {
        Int(UInt(bitPattern: hash).multipliedFullWidth(by: UInt(self.setCount)).high) * self.ways
    }

    /// A hash of the signature (the whole token when it is shorter), seeded per process like every `Hasher`.
    static func hash(of token: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: token.suffix(43))))
        return hasher.finalize()
    }

    /// Whether two byte strings are equal, in a time that depends on their lengths only: every word is compared,
    /// eight bytes at a time, and the differences are gathered rather than returned at the first.
    static func constantTimeEqual(_ stored: [UInt8], _ given: UnsafeBufferPointer<UInt8>) -> Bool {
        guard stored.count == given.count else { return false }
        return stored.withUnsafeBytes { stored in
            let given = UnsafeRawBufferPointer(given)
            var difference: UInt64 = 0
            var offset = 0
            while offset + 8 <= stored.count {
                difference |= stored.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ given.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                offset += 8
            }
            while offset < stored.count {
                difference |= UInt64(stored[offset] ^ given[offset])
                offset += 1
            }
            return difference == 0
        }
    }
}

extension VerifiedTokenCache.Table {
    /// Puts an entry in its set: over the same token if two requests verified it at once, else in a free slot, else
    /// over the first slot from the hand that was not used since it was last passed over (clearing the marks it
    /// passes; two rounds at most). Returns the entry it replaced, so that the caller frees it after the lock.
    mutating func place(_ entry: VerifiedTokenCache.Entry, hash: Int, inSetFrom first: Int, ways: Int) -> VerifiedTokenCache.Entry? {
        guard !self.slots.isEmpty else { return nil }
        var free: Int?
        for slot in first..<(first + ways) {
            let candidate = self.slots[slot]
            guard candidate.entry >= 0 else {
                if free == nil { free = slot }
                continue
            }
            let current = self.entries[Int(candidate.entry)]
            if candidate.hash == hash, entry.token.withUnsafeBufferPointer({ VerifiedTokenCache.constantTimeEqual(current.token, $0) }) {
                self.entries[Int(candidate.entry)] = entry
                return current
            }
        }
        if let free {
            self.slots[free] = VerifiedTokenCache.Slot(hash: hash, entry: Int32(self.entries.count), used: false)
            self.entries.append(entry)
            return nil
        }
        self.hand = (self.hand + 1) % ways
        var slot = first + self.hand
        while self.slots[slot].used {
            self.slots[slot].used = false
            slot = slot + 1 == first + ways ? first : slot + 1
        }
        let position = Int(self.slots[slot].entry)
        let replaced = self.entries[position]
        self.slots[slot].hash = hash
        self.entries[position] = entry
        return replaced
    }
}
