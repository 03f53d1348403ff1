import Crypto
import Foundation
import TesseraTokens

/// One refresh: the presented token's hash, its successor's, and who presented it.
///
/// The successor is derived from the presented token (``RefreshSuccessor``), so one token always has the same
/// successor: a retry within ``reuseInterval`` can be answered with it while the store keeps only hashes.
public struct RefreshRotation: Sendable {
    public var presentedHash: String
    public var successorHash: String
    public var now: Date
    public var origin: RequestOrigin
    /// Where a reuse revocation's session entry may be dropped from the index.
    public var reuseRevocationUntil: Date
    /// Who presented the token: kept with it once it is spent, compared when it is presented again.
    public var client: Client
    /// How long after the token was spent the same client may present it again for the same successor; zero for never.
    public var reuseInterval: Duration

    public init(
        presentedHash: String, successorHash: String, now: Date, origin: RequestOrigin, reuseRevocationUntil: Date, client: Client,
        reuseInterval: Duration
    ) {
        self.presentedHash = presentedHash
        self.successorHash = successorHash
        self.now = now
        self.origin = origin
        self.reuseRevocationUntil = reuseRevocationUntil
        self.client = client
        self.reuseInterval = reuseInterval
    }

    /// What tells the client that spent a token apart from a replay elsewhere: hashes of its user agent and of the
    /// nonce it chose for the refresh, either possibly absent. Only the hashes are stored: a user agent is personal
    /// data, and a nonce kept in clear would let a reader of the database pass for the client.
    public struct Client: Sendable, Equatable {
        public var userAgentHash: String?
        public var nonceHash: String?

        public init(userAgentHash: String?, nonceHash: String?) {
            self.userAgentHash = userAgentHash
            self.nonceHash = nonceHash
        }

        /// The client of a request: its user agent and the nonce it sent, hashed.
        public init(userAgent: String?, nonce: String?) {
            self.init(userAgentHash: userAgent.map { Self.hash("user-agent", $0) }, nonceHash: nonce.map { Self.hash("client-nonce", $0) })
        }

        /// Whether another presentation came from this client: both hashes equal, absence included (a nonce given
        /// with the first presentation must be given again), compared in constant time so that a replay learns
        /// nothing of the nonce from how fast it is refused.
        public func matches(_ other: Client) -> Bool {
            // Both compared, whichever differs: how long a refusal takes tells nothing of which one it was.
            let sameUserAgent = Self.equal(self.userAgentHash, other.userAgentHash)
            let sameNonce = Self.equal(self.nonceHash, other.nonceHash)
            return sameUserAgent && sameNonce
        }

        private static func hash(_ purpose: String, _ value: String) -> String {
            SHA256.hash(data: Data((purpose + ":" + value).utf8)).map { String(format: "%02x", $0) }.joined()
        }

        private static func equal(_ one: String?, _ other: String?) -> Bool {
            switch (one, other) {
            case (nil, nil): return true
            case (let one?, let other?):
                let left = Array(one.utf8)
                let right = Array(other.utf8)
                guard left.count == right.count else { return false }
                var difference: UInt8 = 0
                for index in left.indices { difference |= left[index] ^ right[index] }
                return difference == 0
            default: return false
            }
        }
    }
}
