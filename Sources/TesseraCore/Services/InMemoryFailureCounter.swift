import Foundation
import Synchronization
import TesseraTokens

/// Failed sign-ins counted in this process's memory, bounded however many keys an attacker invents: each key keeps
/// at most the latest failures it needs, and past `maximumKeys` the keys with no failure inside their window go.
public final class InMemoryFailureCounter: FailureCounter {
    private struct Entry {
        var failures: [Date]
        var window: TimeInterval
    }

    private let table = Mutex<[String: Entry]>([:])
    let maximumKeys: Int

    public init(maximumKeys: Int = 100_000) {
        self.maximumKeys = maximumKeys
    }

    public func failures(for key: String, since: Date) async throws -> [Date] {
        self.table.withLock { table in (table[key]?.failures ?? []).filter { $0 > since } }
    }

    public func record(_ key: String, at now: Date, keepingAtMost limit: Int, window: Duration) async throws {
        let seconds = window.timeInterval
        self.table.withLock { table in
            var entry = table[key] ?? Entry(failures: [], window: seconds)
            entry.failures = entry.failures.filter { $0 > now.addingTimeInterval(-seconds) }
            entry.failures.append(now)
            if entry.failures.count > limit { entry.failures.removeFirst(entry.failures.count - limit) }
            table[key] = entry
            if table.count > self.maximumKeys {
                table = table.filter { _, entry in entry.failures.last.map { $0 > now.addingTimeInterval(-entry.window) } ?? false }
            }
            if table.count > self.maximumKeys {
                // Still full of live keys (a flood from many addresses): drop the quietest tenth rather than grow.
                let quietest = table.sorted { ($0.value.failures.last ?? .distantPast) < ($1.value.failures.last ?? .distantPast) }
                for (key, _) in quietest.prefix(table.count - self.maximumKeys * 9 / 10) { table.removeValue(forKey: key) }
            }
        }
    }

    /// How many keys are held.
    var count: Int { self.table.withLock { $0.count } }

    public func reset(_ key: String) async throws {
        _ = self.table.withLock { $0.removeValue(forKey: key) }
    }
}
