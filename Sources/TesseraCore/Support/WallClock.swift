import Foundation
import Synchronization
import TesseraTokens

/// Where the rules read the time from; tests pin it.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// The system's clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to, for tests.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        self.current = Mutex(start)
    }

    public func now() -> Date { self.current.withLock { $0 } }

    /// Moves the clock forward.
    public func advance(by duration: Duration) {
        self.current.withLock { $0 = $0.addingTimeInterval(duration.timeInterval) }
    }
}
