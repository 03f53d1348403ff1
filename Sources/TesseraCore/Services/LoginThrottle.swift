import Foundation
import Synchronization

/// Counts failed sign-ins per normalized email and refuses sign-in once there were too many within the window.
///
/// Kept per process: each instance enforces the limit for the requests it sees. Keyed by the email as typed,
/// whether or not an account exists, so that a lockout does not tell which emails are registered.
public final class LoginThrottle: Sendable {
    public let maximumFailures: Int
    public let window: Duration
    private let failures = Mutex<[String: [Date]]>([:])

    /// - Parameters:
    ///   - maximumFailures: failures tolerated inside the window; one more locks sign-in.
    ///   - window: how far back failures count; a lock ends as the oldest failures age out.
    public init(maximumFailures: Int = 10, window: Duration = .seconds(300)) {
        self.maximumFailures = maximumFailures
        self.window = window
    }

    /// Throws ``AuthError/tooManyAttempts(retryAfterSeconds:)`` while the email is locked.
    public func check(_ email: String, now: Date) throws(AuthError) {
        let cutoff = now.addingTimeInterval(-self.window.timeInterval)
        let recent: [Date] = self.failures.withLock { table in
            let kept = (table[email] ?? []).filter { $0 > cutoff }
            table[email] = kept.isEmpty ? nil : kept
            return kept
        }
        if recent.count > self.maximumFailures, let unlockingFailure = recent.dropLast(self.maximumFailures).last {
            let retryAfter = unlockingFailure.addingTimeInterval(self.window.timeInterval).timeIntervalSince(now)
            throw .tooManyAttempts(retryAfterSeconds: max(1, Int(retryAfter.rounded(.up))))
        }
    }

    /// Records one failed sign-in.
    public func recordFailure(_ email: String, now: Date) {
        let cutoff = now.addingTimeInterval(-self.window.timeInterval)
        self.failures.withLock { table in
            var list = (table[email] ?? []).filter { $0 > cutoff }
            list.append(now)
            // Never keep more than needed to decide, however hard someone hammers one email.
            if list.count > self.maximumFailures + 1 { list.removeFirst(list.count - self.maximumFailures - 1) }
            table[email] = list
            if table.count > 100_000 { table = table.filter { $0.value.last.map { $0 > cutoff } ?? false } }
        }
    }

    /// Forgets failures after a successful sign-in.
    public func reset(_ email: String) {
        _ = self.failures.withLock { $0.removeValue(forKey: email) }
    }
}
