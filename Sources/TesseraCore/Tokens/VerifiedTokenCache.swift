import Synchronization

/// Tokens whose signature and claims were already checked.
///
/// A hit skips the HMAC and the parsing, never the checks that change with time: expiry, not-before and
/// revocation are checked on every request. Bounded: when full it starts over, which costs one verification per
/// live token and keeps memory flat whatever the traffic.
///
/// Looked up by the token's bytes where they lie (no `String` is made for a hit). The slot is chosen by a seeded
/// hash of the signature — the last 43 characters, as random as a hash of the whole token, and hashing it instead
/// of ~450 bytes took a visible share off each request, inside the lock — and a hit needs every byte of the token
/// to match, compared in constant time. Only verified tokens are stored, so no one can choose what lies in a slot.
final class VerifiedTokenCache: Sendable {
    let capacity: Int
    private let entries = Mutex<[Int: Entry]>([:])

    struct Entry: Sendable {
        let token: [UInt8]
        let verified: VerifiedAccessToken
    }

    init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    func lookup(_ token: UnsafeBufferPointer<UInt8>) -> VerifiedAccessToken? {
        let slot = Self.slot(of: token)
        return self.entries.withLock { entries in
            guard let entry = entries[slot], Self.constantTimeEqual(entry.token, token) else { return nil }
            return entry.verified
        }
    }

    func insert(_ token: UnsafeBufferPointer<UInt8>, _ verified: VerifiedAccessToken) {
        let entry = Entry(token: Array(token), verified: verified)
        let slot = Self.slot(of: token)
        self.entries.withLock { entries in
            if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[slot] = entry
        }
    }

    /// A hash of the signature (the whole token when it is shorter), seeded per process like every `Hasher`.
    static func slot(of token: UnsafeBufferPointer<UInt8>) -> Int {
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
