import Foundation
import TesseraTokens

/// Slows online password guessing without letting anyone lock an owner out (OWASP Authentication Cheat Sheet,
/// "Account lockout" and "device cookies").
///
/// Failures are counted per (account, client address) and per client address, so an attacker's failures block
/// the attacker, not the owner: 10 failures on one account from one address, or 50 from one address across any
/// accounts (a password spray), refuse that address for the window (429 with `Retry-After`). Failures on one
/// account from many addresses only *slow* every sign-in to it (a fixed delay before the password is checked),
/// never refuse it. A browser that signed in to the account before holds a device cookie (verified by the
/// server, passed here as `trustedDevice`); its attempts are exempt from the account's and the address's limits
/// and counted on the device alone. Accounts are keyed by the typed address's normalized form whether or not an
/// account exists, so the limits tell nothing about which addresses are registered.
///
/// The counts live in a ``FailureCounter``: in memory for one instance; a shared store can implement it so that
/// every instance sees the same counts.
public struct LoginThrottle: Sendable {
    /// The limits, all over one sliding window.
    public struct Limits: Sendable, Equatable {
        public var window: Duration
        /// Failures tolerated on one account from one address (or from one trusted device) before it is refused.
        public var perAccountAndAddress: Int
        /// Failures tolerated from one address across all accounts before it is refused.
        public var perAddress: Int
        /// Failures on one account from anywhere after which every sign-in to it is slowed.
        public var perAccountBeforeSlowing: Int
        /// How long a slowed sign-in waits before its password is checked.
        public var slowdown: Duration

        public init(
            window: Duration = .seconds(300), perAccountAndAddress: Int = 10, perAddress: Int = 50, perAccountBeforeSlowing: Int = 20,
            slowdown: Duration = .seconds(1)
        ) {
            self.window = window
            self.perAccountAndAddress = perAccountAndAddress
            self.perAddress = perAddress
            self.perAccountBeforeSlowing = perAccountBeforeSlowing
            self.slowdown = slowdown
        }
    }

    /// Who is trying: the account's normalized address, the client's address, and the device cookie's id when the
    /// server verified one for this account.
    public struct Attempt: Sendable, Equatable {
        public var account: String
        public var address: String?
        public var trustedDevice: String?

        public init(account: String, address: String?, trustedDevice: String? = nil) {
            self.account = account
            self.address = address
            self.trustedDevice = trustedDevice
        }

        /// The counters that decide whether this attempt is refused, each with its limit.
        func blockingKeys(_ limits: Limits) -> [(key: String, limit: Int)] {
            if let device = self.trustedDevice { return [("device|\(device)", limits.perAccountAndAddress)] }
            let address = self.address ?? "unknown"
            return [("account+address|\(self.account)|\(address)", limits.perAccountAndAddress), ("address|\(address)", limits.perAddress)]
        }

        var accountKey: String { "account|\(self.account)" }
    }

    public let limits: Limits
    let counter: any FailureCounter

    public init(limits: Limits = Limits(), counter: any FailureCounter = InMemoryFailureCounter()) {
        self.limits = limits
        self.counter = counter
    }

    /// Refuses the attempt with ``AuthError/tooManyAttempts(retryAfterSeconds:)`` when its address (or device) is
    /// over a limit; otherwise returns how long to wait before checking the password (zero unless the account is
    /// under attack from many addresses and this is not a trusted device).
    public func check(_ attempt: Attempt, now: Date) async throws -> Duration {
        let since = now.addingTimeInterval(-self.limits.window.timeInterval)
        for (key, limit) in attempt.blockingKeys(self.limits) {
            let failures = try await self.counter.failures(for: key, since: since)
            if failures.count >= limit, let unlocking = failures.dropLast(limit - 1).last {
                let retryAfter = unlocking.addingTimeInterval(self.limits.window.timeInterval).timeIntervalSince(now)
                throw AuthError.tooManyAttempts(retryAfterSeconds: max(1, Int(retryAfter.rounded(.up))))
            }
        }
        guard attempt.trustedDevice == nil else { return .zero }
        let onAccount = try await self.counter.failures(for: attempt.accountKey, since: since)
        return onAccount.count >= self.limits.perAccountBeforeSlowing ? self.limits.slowdown : .zero
    }

    /// ``check(_:now:)``, then waits out the slowdown it asks for: what a sign-in does before checking a password.
    public func admit(_ attempt: Attempt, now: Date) async throws {
        let delay = try await self.check(attempt, now: now)
        if delay > .zero { try await Task.sleep(for: delay) }
    }

    /// Records one failed attempt on every counter it belongs to.
    public func recordFailure(_ attempt: Attempt, now: Date) async throws {
        let keep = max(self.limits.perAddress, self.limits.perAccountBeforeSlowing, self.limits.perAccountAndAddress)
        for (key, _) in attempt.blockingKeys(self.limits) {
            try await self.counter.record(key, at: now, keepingAtMost: keep, window: self.limits.window)
        }
        if attempt.trustedDevice == nil {
            try await self.counter.record(attempt.accountKey, at: now, keepingAtMost: keep, window: self.limits.window)
        }
    }

    /// Forgets this address's (or device's) failures on the account after a successful sign-in. The account's own
    /// count stays: failures from elsewhere keep slowing whoever tries next.
    public func recordSuccess(_ attempt: Attempt) async throws {
        for (key, _) in attempt.blockingKeys(self.limits) where !key.hasPrefix("address|") {
            try await self.counter.reset(key)
        }
    }
}

/// Where failed sign-ins are counted: per key, the recent failure times.
public protocol FailureCounter: Sendable {
    /// The failures recorded for a key after `since`, oldest first.
    func failures(for key: String, since: Date) async throws -> [Date]
    /// Records a failure, keeping at most the latest `keepingAtMost` within the window.
    func record(_ key: String, at: Date, keepingAtMost: Int, window: Duration) async throws
    /// Forgets a key's failures.
    func reset(_ key: String) async throws
}
