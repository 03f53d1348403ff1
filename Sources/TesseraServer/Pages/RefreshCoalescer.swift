import Synchronization
import TesseraCore

/// Runs at most one refresh per refresh token and hands its new pair to every request from the same browser that
/// presented the same token within a few seconds.
///
/// A browser that opens two tabs after its access cookie expired sends the same refresh cookie twice at once; without
/// this, the second refresh would look like a stolen token being replayed and revoke the session. The grace is bound
/// to the client that started the refresh (the same refresh cookie and the same user agent): the same cookie from
/// another client within the grace is a replay from elsewhere and is treated as reuse — it waits for the first
/// refresh to commit, then presents the spent token, which revokes the whole session (`TOKEN_REUSE_DETECTED`). The
/// coalescing is this process's; a second tab that reaches another instance is answered by the store's reuse
/// interval, which gives the JSON API the same grace (``AuthService/refresh(refreshToken:clientNonce:origin:)``).
final class RefreshCoalescer: Sendable {
    private struct Entry {
        let task: Task<TokenPair, any Error>
        let startedAt: ContinuousClock.Instant
        let userAgent: String?
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
        let (task, sameClient) = self.entries.withLock { entries in
            let now = ContinuousClock.now
            entries = entries.filter { now - $0.value.startedAt < Self.grace }
            if let running = entries[key] { return (running.task, running.userAgent == origin.userAgent) }
            let task = Task { try await auth.refresh(refreshToken: refreshToken, origin: origin) }
            entries[key] = Entry(task: task, startedAt: now, userAgent: origin.userAgent)
            return (task, true)
        }
        guard sameClient else {
            // Another client with this browser's refresh cookie: let the first refresh commit, then present the spent
            // token as the replay it is, so that the store revokes the session and audits the reuse.
            _ = try? await task.value
            return try await auth.refresh(refreshToken: refreshToken, origin: origin)
        }
        return try await task.value
    }
}
