import Foundation
import Testing

@testable import TesseraCore

@Suite struct LoginThrottleTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let limits = LoginThrottle.Limits(window: .seconds(300), perAccountAndAddress: 10, perAddress: 50, perAccountBeforeSlowing: 20, slowdown: .seconds(1))

    func attempt(_ account: String = "a@x.org", from address: String = "198.51.100.1", device: String? = nil) -> LoginThrottle.Attempt {
        LoginThrottle.Attempt(account: account, address: address, trustedDevice: device)
    }

    @Test func tenFailuresFromOneAddressAreToleratedAndTheEleventhAttemptIsRefused() async throws {
        // Attack: online password guessing against one account from one place.
        let throttle = LoginThrottle(limits: self.limits)
        for second in 0..<10 {
            _ = try await throttle.check(self.attempt(), now: self.now.addingTimeInterval(Double(second)))
            try await throttle.recordFailure(self.attempt(), now: self.now.addingTimeInterval(Double(second)))
        }
        await #expect(throws: AuthError.tooManyAttempts(retryAfterSeconds: 290)) {
            _ = try await throttle.check(self.attempt(), now: self.now.addingTimeInterval(10))
        }
        #expect(try await throttle.check(self.attempt("b@x.org"), now: self.now.addingTimeInterval(11)) == .zero)
        // The lock cools down as the failures age out.
        #expect(try await throttle.check(self.attempt(), now: self.now.addingTimeInterval(301)) == .zero)
    }

    @Test(arguments: [12, 40, 500])
    func failuresFromElsewhereNeverLockTheOwnerOut(failures: Int) async throws {
        // Attack: a denial of service by lock-out — wrong passwords for someone else's account, from anywhere.
        let throttle = LoginThrottle(limits: self.limits)
        for index in 0..<failures {
            let attacker = self.attempt(from: "203.0.113.\(index % 3)")
            if (try? await throttle.check(attacker, now: self.now)) != nil { try await throttle.recordFailure(attacker, now: self.now) }
        }
        // The owner, from their own address, is never refused; once the account is under attack from many places,
        // sign-in is slowed, and a browser that signed in before is not even slowed.
        let delay = try await throttle.check(self.attempt(from: "192.0.2.7"), now: self.now.addingTimeInterval(1))
        #expect(delay <= self.limits.slowdown)
        #expect(try await throttle.check(self.attempt(from: "192.0.2.7", device: "d1"), now: self.now.addingTimeInterval(1)) == .zero)
        // The attackers' own addresses are refused once each made ten failures on the account.
        if failures >= 30 {
            await #expect(throws: AuthError.self) { _ = try await throttle.check(self.attempt(from: "203.0.113.0"), now: self.now.addingTimeInterval(1)) }
        }
    }

    @Test func aSprayOfOnePasswordAcrossManyAccountsFromOneAddressIsRefused() async throws {
        // Attack: password spraying — one common password tried once against each of many accounts.
        let throttle = LoginThrottle(limits: self.limits)
        for index in 0..<50 {
            let spray = self.attempt("user\(index)@x.org", from: "203.0.113.9")
            _ = try await throttle.check(spray, now: self.now)
            try await throttle.recordFailure(spray, now: self.now)
        }
        await #expect(throws: AuthError.self) { _ = try await throttle.check(self.attempt("next@x.org", from: "203.0.113.9"), now: self.now) }
        #expect(try await throttle.check(self.attempt("next@x.org", from: "198.51.100.2"), now: self.now) == .zero)
    }

    @Test func aTrustedDeviceIsLimitedOnItsOwn() async throws {
        // Attack: a stolen device cookie used to guess passwords without limit.
        let throttle = LoginThrottle(limits: self.limits)
        for _ in 0..<10 { try await throttle.recordFailure(self.attempt(device: "d1"), now: self.now) }
        await #expect(throws: AuthError.self) { _ = try await throttle.check(self.attempt(device: "d1"), now: self.now) }
        #expect(try await throttle.check(self.attempt(), now: self.now) == .zero)
    }

    @Test func aSuccessfulSignInForgetsThatAddressesFailuresOnly() async throws {
        let throttle = LoginThrottle(limits: self.limits)
        for _ in 0..<10 { try await throttle.recordFailure(self.attempt(), now: self.now) }
        try await throttle.recordSuccess(self.attempt())
        #expect(try await throttle.check(self.attempt(), now: self.now) == .zero)
    }

    @Test func inventedKeysCannotGrowTheTableWithoutBound() async throws {
        // Attack: memory exhaustion with a new email and a new address on every attempt.
        let counter = InMemoryFailureCounter(maximumKeys: 1_000)
        let throttle = LoginThrottle(limits: self.limits, counter: counter)
        for index in 0..<5_000 {
            try await throttle.recordFailure(self.attempt("u\(index)@x.org", from: "10.0.\(index / 256).\(index % 256)"), now: self.now)
        }
        #expect(counter.count <= 1_000)
    }
}
