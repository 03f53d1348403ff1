import Foundation
import Hummingbird
import Logging
import Synchronization

/// One log line per answered request, at `info`: method, route template (never the path, which may carry an id the
/// line does not need), status, duration in milliseconds, and the caller's user id where a bearer token or page
/// session said who it was. With `LOG_FORMAT=json` these are members of the line; the request id comes from
/// ``RequestIdMiddleware``, which runs before this. The query string and headers are never logged: they may carry
/// tokens.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.logger.logLevel <= .info else { return try await next(request, context) }
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            self.log(request, context: context, status: response.status.code, started: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            self.log(request, context: context, status: status, started: started)
            throw error
        }
    }

    private func log(_ request: Request, context: Context, status: Int, started: ContinuousClock.Instant) {
        let elapsed = started.duration(to: .now)
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue),
            "route": .string(context.endpointPath ?? "unmatched"),
            "status": .stringConvertible(status),
            "durationMs": .stringConvertible((elapsed.timeInterval * 1_000_000).rounded() / 1000),
        ]
        if let user = context.caller.userId { metadata["user"] = .string(user.lowercasedString) }
        context.logger.info("request", metadata: metadata)
    }
}

/// Who the request turned out to be from, told by the middleware that found out (bearer token, page session) to
/// the access log line written outside them: the context is a value, and what an inner middleware sets in its copy
/// never reaches the outer one.
final class RequestCaller: Sendable {
    private let id = Mutex<UUID?>(nil)

    var userId: UUID? {
        get { self.id.withLock { $0 } }
        set { self.id.withLock { $0 = newValue } }
    }
}
