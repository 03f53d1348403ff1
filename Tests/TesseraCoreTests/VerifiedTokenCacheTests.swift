import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// The cache answers for the HMAC and the parser: it must never answer for a token it was not given, and being full
/// must not make every live token pay its verification again at once.
@Suite struct VerifiedTokenCacheTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Bytes shaped like a token (~120 bytes), whose last 43 (the "signature", which picks the set) differ by `number`.
    func token(_ number: Int) -> [UInt8] {
        let signature = String(repeating: "s", count: 43 - 12) + String(format: "%012d", number)
        return Array("eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibm0iOjF9.\(signature)".utf8)
    }

    func verified() -> VerifiedAccessToken {
        VerifiedAccessToken(
            userId: UUID(), sessionId: UUID(), jti: UUID(), role: .user, version: 0, epoch: 0, issuedAt: self.now,
            expiresAt: self.now.addingTimeInterval(900)
        )
    }

    func insert(_ token: [UInt8], into cache: VerifiedTokenCache) -> VerifiedAccessToken {
        let verified = self.verified()
        token.withUnsafeBufferPointer { cache.insert($0, verified) }
        return verified
    }

    func lookup(_ token: [UInt8], in cache: VerifiedTokenCache) -> VerifiedAccessToken? {
        token.withUnsafeBufferPointer { cache.lookup($0) }
    }

    /// Herd: a cache that starts over when full re-verifies every live token at once (an HMAC and a parse each, all
    /// in the same second). Filled four times over, it must forget one token per new one and keep the recent ones.
    @Test func aFullCacheNeverDropsAllItsEntriesAtOnceAndKeepsTheRecentOnes() {
        let capacity = 1024
        let cache = VerifiedTokenCache(capacity: capacity)
        var counts: [Int] = []
        var stored: [VerifiedAccessToken] = []
        for number in 0..<(4 * capacity) {
            stored.append(self.insert(self.token(number), into: cache))
            counts.append(cache.count)
            #expect(self.lookup(self.token(number), in: cache) == stored[number], "the token just verified is a hit")
        }
        #expect(counts == counts.sorted(), "the number of tokens kept never falls")
        #expect(counts.max() ?? 0 <= capacity)
        #expect(cache.count > capacity * 9 / 10, "every set fills up")
        let recent = (3 * capacity)..<(4 * capacity)
        let hits = recent.filter { self.lookup(self.token($0), in: cache) == stored[$0] }.count
        #expect(hits > recent.count / 2, "most of the last \(recent.count) tokens are still there: \(hits)")
    }

    /// A token in use (hit since its set was last passed over) outlives a flood of tokens seen once, such as a burst
    /// of sign-ins or someone replaying many valid tokens of their own.
    @Test func aTokenInUseSurvivesAFloodOfNewOnes() {
        let cache = VerifiedTokenCache(capacity: 64)
        let hot = self.token(-1)
        let verified = self.insert(hot, into: cache)
        for number in 0..<10_000 {
            _ = self.insert(self.token(number), into: cache)
            #expect(self.lookup(hot, in: cache) == verified, "after \(number) new tokens")
        }
    }

    @Test func theCacheNeverHoldsMoreThanItsCapacity() {
        for capacity in [1, 2, 3, 5, 10, 1023] {
            let cache = VerifiedTokenCache(capacity: capacity)
            for number in 0..<(8 * capacity + 8) { _ = self.insert(self.token(number), into: cache) }
            #expect(cache.count <= capacity, "capacity \(capacity)")
            #expect(cache.count >= min(capacity, 4) * (capacity / min(capacity, 4)), "capacity \(capacity): every slot in use")
        }
    }

    /// Two requests verifying the same new token at once both insert it: it takes one slot, not two.
    @Test func theSameTokenInsertedTwiceTakesOneSlot() {
        let cache = VerifiedTokenCache(capacity: 16)
        _ = self.insert(self.token(7), into: cache)
        let second = self.insert(self.token(7), into: cache)
        #expect(cache.count == 1)
        #expect(self.lookup(self.token(7), in: cache) == second)
    }

    /// Attack: a verified token altered in one byte — in the payload (another `sub`, a later `exp`), which does not
    /// pick the set, or in the signature, which does — must be checked afresh, never answered with the claims of the
    /// token that was verified. Nor may a prefix or an extension of it.
    @Test func aTokenDifferingInOneByteIsNotAHit() {
        let cache = VerifiedTokenCache(capacity: 1024)
        let token = self.token(42)
        _ = self.insert(token, into: cache)
        for position in token.indices {
            var altered = token
            altered[position] ^= 0x01
            #expect(self.lookup(altered, in: cache) == nil, "byte \(position)")
        }
        #expect(self.lookup(Array(token.dropFirst()), in: cache) == nil)
        #expect(self.lookup(token + [0x41], in: cache) == nil)
        #expect(self.lookup(Array(token.dropLast()), in: cache) == nil)
        #expect(self.lookup(token, in: cache) != nil)
    }

    @Test func anEmptyCacheHasNoHitsEvenForAnEmptyToken() {
        let cache = VerifiedTokenCache(capacity: 8)
        #expect(self.lookup([], in: cache) == nil)
        #expect(self.lookup(self.token(1), in: cache) == nil)
        _ = self.insert(self.token(1), into: cache)
        #expect(self.lookup([], in: cache) == nil)
    }
}
