import Synchronization
import TesseraCore

/// Runs at most one refresh per refresh token and hands its new pair to every request that presented the same
/// token within a few seconds.
///
/// A browser that opens two tabs after its access cookie expired sends the same refresh cookie twice at once; without
/// this, the second refresh would look like a stolen token being replayed and revoke the session. The grace applies
/// to the cookie path only, in this process; the JSON API keeps strict one-time refresh tokens.
final class RefreshCoalescer: Sendable {
    private struct Entry {
        let task: Task<TokenPair, any Error>
        let startedAt: ContinuousClock.Instant
    }

    static let grace: Duration = .seconds(10)
    private let auth: AuthService
    private let entries = Mutex<[String: Entry]>([:])

    init(auth: AuthService) {
        self.auth = auth
    }

    func refresh(_ refreshToken: String, origin: RequestOrigin) async throws -> TokenPair {
        // Keyed by the token's hash, as the database keeps it: the token itself is not held longer than the call.
        let key = OpaqueToken.hash(refreshToken)
        let auth = self.auth
        let task = self.entries.withLock { entries in
            let now = ContinuousClock.now
            entries = entries.filter { now - $0.value.startedAt < Self.grace }
            if let running = entries[key] { return running.task }
            let task = Task { try await auth.refresh(refreshToken: refreshToken, origin: origin) }
            entries[key] = Entry(task: task, startedAt: now)
            return task
        }
        return try await task.value
    }
}
