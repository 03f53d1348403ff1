import Foundation
import Testing

@testable import TesseraCore

@Suite struct LoginThrottleTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func tenFailuresAreToleratedAndTheEleventhLocks() throws {
        // Attack: online password guessing against one account.
        let throttle = LoginThrottle(maximumFailures: 10, window: .seconds(300))
        for second in 0..<10 {
            try throttle.check("a@x.org", now: self.now.addingTimeInterval(Double(second)))
            throttle.recordFailure("a@x.org", now: self.now.addingTimeInterval(Double(second)))
        }
        try throttle.check("a@x.org", now: self.now.addingTimeInterval(10))
        throttle.recordFailure("a@x.org", now: self.now.addingTimeInterval(10))
        #expect(throws: AuthError.self) { try throttle.check("a@x.org", now: self.now.addingTimeInterval(11)) }
        #expect(throws: Never.self) { try throttle.check("b@x.org", now: self.now.addingTimeInterval(11)) }
    }

    @Test func theLockCoolsDownAsFailuresAgeOut() throws {
        let throttle = LoginThrottle(maximumFailures: 10, window: .seconds(300))
        for _ in 0..<11 { throttle.recordFailure("a@x.org", now: self.now) }
        do {
            try throttle.check("a@x.org", now: self.now.addingTimeInterval(60))
            Issue.record("expected a lock")
        } catch {
            #expect(error == .tooManyAttempts(retryAfterSeconds: 240))
        }
        try throttle.check("a@x.org", now: self.now.addingTimeInterval(301))
    }

    @Test func aSuccessfulSignInForgetsFailures() throws {
        let throttle = LoginThrottle(maximumFailures: 2, window: .seconds(300))
        for _ in 0..<3 { throttle.recordFailure("a@x.org", now: self.now) }
        throttle.reset("a@x.org")
        try throttle.check("a@x.org", now: self.now)
    }
}
