import Synchronization

/// Lets at most one caller through per interval: for work that a request may trigger but an attacker must not be
/// able to multiply (reading the keys again for an unknown `kid`, the clients for an unknown id).
public final class RateGate: Sendable {
    public let interval: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    public init(every interval: Duration) {
        self.interval = interval
    }

    /// Whether this caller may go ahead; if so, the next one may only after the interval.
    public func admit(at now: ContinuousClock.Instant = .now) -> Bool {
        self.last.withLock { last in
            if let last, last.duration(to: now) < self.interval { return false }
            last = now
            return true
        }
    }
}
