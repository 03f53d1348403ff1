import Hummingbird
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
        do {
            try await self.auth.store.ping()
            checks["database"] = "ok"
        } catch {
            checks["database"] = "unreachable"
        }
        checks["revocationIndex"] = self.auth.index.isCurrent() ? "current" : "stale"
        let ready = checks["database"] == "ok" && checks["revocationIndex"] == "current"
        return EditedResponse(status: ready ? .ok : .serviceUnavailable, response: StatusResponse(status: ready ? "ready" : "not_ready", checks: checks))
    }
}
