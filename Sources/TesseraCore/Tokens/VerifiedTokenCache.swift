import Synchronization

/// Tokens whose signature and claims were already checked, keyed by the whole token.
///
/// A hit skips the HMAC and the parsing, never the checks that change with time: expiry, not-before and
/// revocation are checked on every request. Bounded: when full it starts over, which costs one verification per
/// live token and keeps memory flat whatever the traffic.
final class VerifiedTokenCache: Sendable {
    let capacity: Int
    private let entries = Mutex<[String: VerifiedAccessToken]>([:])

    init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    func lookup(_ token: String) -> VerifiedAccessToken? {
        self.entries.withLock { $0[token] }
    }

    func insert(_ token: String, _ verified: VerifiedAccessToken) {
        self.entries.withLock { entries in
            if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = verified
        }
    }
}
