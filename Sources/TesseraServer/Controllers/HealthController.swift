import Hummingbird
import Synchronization
import TesseraCore

/// `/health` (the process runs) and `/ready` (the database answers and the revocation index is current).
struct HealthController {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    func addRoutes(to router: Router<Context>) {
        router.get("health", use: self.health)
        router.get("ready", use: self.ready)
    }

    @Sendable func health(request: Request, context: Context) async throws -> HealthResponse {
        HealthResponse()
    }

    @Sendable func ready(request: Request, context: Context) async throws -> EditedResponse<StatusResponse> {
        var checks: [String: String] = [:]
        let store = self.auth.store
        // A load balancer asks often and gives up soon: answer within a second whatever the database does.
        checks["database"] = await Self.succeeds(within: Self.databaseCheckBound) { try await store.ping() } ? "ok" : "unreachable"

        checks["revocationIndex"] = self.auth.index.isCurrent() ? "current" : "stale"
        let ready = checks["database"] == "ok" && checks["revocationIndex"] == "current"
        return EditedResponse(status: ready ? .ok : .serviceUnavailable, response: StatusResponse(status: ready ? "ready" : "not_ready", checks: checks))
    }

    static let databaseCheckBound: Duration = .milliseconds(800)

    /// Whether the work finishes without error within the bound, counted from when the work starts (a process
    /// short of CPU must not report its database as down). Work still running at the bound is left to finish on its
    /// own (a SQLite call cannot be interrupted); its answer is then ignored.
    static func succeeds(within bound: Duration, _ work: @escaping @Sendable () async throws -> Void) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer = FirstAnswer(continuation)
            Task {
                answer.markStarted()
                do {
                    try await work()
                    answer.give(true)
                } catch {
                    answer.give(false)
                }
            }
            Task {
                while !answer.isGiven {
                    try? await Task.sleep(for: .milliseconds(50))
                    if let since = answer.startedAt, since.duration(to: .now) >= bound { answer.give(false) }
                }
            }
        }
    }
}

/// Resumes a continuation with the first answer given and ignores the rest.
private final class FirstAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func give(_ value: Bool) {
        self.continuation.withLock { pending in
            pending?.resume(returning: value)
            pending = nil
        }
    }

    var isGiven: Bool { self.continuation.withLock { $0 == nil } }

    private let started = Mutex<ContinuousClock.Instant?>(nil)
    func markStarted() { self.started.withLock { $0 = .now } }
    var startedAt: ContinuousClock.Instant? { self.started.withLock { $0 } }
}
