import Synchronization

/// Tokens whose signature and claims were already checked, keyed by the whole token.
///
/// A hit skips the HMAC and the parsing, never the checks that change with time: expiry, not-before and
/// revocation are checked on every request. Bounded: when full it starts over, which costs one verification per
/// live token and keeps memory flat whatever the traffic.
final class VerifiedTokenCache: Sendable {
    let capacity: Int
    private let entries = Mutex<[Key: VerifiedAccessToken]>([:])

    /// A token as a key: equal only to the very same token, hashed by its signature alone. The signature is the last
    /// 43 characters, as random as a hash of the whole token, and hashing it instead of ~450 bytes took a visible
    /// share off each request, inside the lock. Only verified tokens are stored, so no one can choose colliding keys.
    struct Key: Hashable, Sendable {
        let token: String

        func hash(into hasher: inout Hasher) {
            let hashed: Void? = self.token.utf8.withContiguousStorageIfAvailable { bytes in
                hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.suffix(43))))
            }
            if hashed == nil { hasher.combine(self.token) }
        }

        static func == (lhs: Key, rhs: Key) -> Bool { lhs.token == rhs.token }
    }

    init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    func lookup(_ token: String) -> VerifiedAccessToken? {
        let key = Key(token: token)
        return self.entries.withLock { $0[key] }
    }

    func insert(_ token: String, _ verified: VerifiedAccessToken) {
        self.entries.withLock { entries in
            if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[Key(token: token)] = verified
        }
    }
}
