import Foundation
import Hummingbird
import Logging
import NIOCore
import TesseraCore
import TesseraStore

/// Turns every error into `application/problem+json` with a stable `code`, and logs it without secrets:
/// token failures at `.debug` with their reason, server faults at `.error` with the error's type only.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let oauth as OAuthError {
            return try oauth.response(from: request, context: context)
        } catch {
            let problem = Self.problem(for: error, request: request, logger: context.logger)
            return try problem.response(from: request, context: context)
        }
    }

    static func problem(for error: any Error, request: Request, logger: Logger) -> ProblemError {
        switch error {
        case let problem as ProblemError:
            return problem
        case let authError as AuthError:
            if case .invalidToken(let reason) = authError {
                logger.debug("access token refused", metadata: ["reason": "\(reason)"])
            }
            return authError.problem
        case let httpError as HTTPError:
            return Self.problem(for: httpError, request: request)
        case is NIOTooManyBytesError:
            return ProblemError(.contentTooLarge, code: "payload_too_large", detail: "The body is larger than 64 KiB.")
        case let unavailable as StoreUnavailable:
            logger.warning("database unavailable", metadata: ["reason": "\(unavailable.reason)", "path": "\(request.uri.path)"])
            return ProblemError.databaseUnavailable
        case let keys as KeyEncryptionError:
            logger.error("signing keys unavailable", metadata: ["reason": "\(keys.description)", "path": "\(request.uri.path)"])
            return ProblemError.databaseUnavailable
        case is DecodingError:
            return ProblemError(.badRequest, code: "invalid_body", detail: "The body is not the JSON this route expects.")
        default:
            logger.error("request failed", metadata: ["error.type": "\(type(of: error))", "path": "\(request.uri.path)"])
            return ProblemError(.internalServerError, code: "internal_error", detail: "Something went wrong on our side; it was logged.")
        }
    }

    static func problem(for error: HTTPError, request: Request) -> ProblemError {
        switch error.status {
        case .notFound:
            return ProblemError(.notFound, code: "not_found", detail: "There is no route \(request.method) \(request.uri.path).")
        case .contentTooLarge:
            return ProblemError(.contentTooLarge, code: "payload_too_large", detail: "The body is larger than 64 KiB.")
        case .methodNotAllowed:
            return ProblemError(.methodNotAllowed, code: "method_not_allowed", detail: error.body ?? "Method not allowed.", headers: error.headers)
        default:
            let code = error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_")
            return ProblemError(error.status, code: code, detail: error.body ?? error.status.reasonPhrase)
        }
    }
}

extension ProblemError {
    /// A write that could not commit or a read that could not run: nothing was changed, try again shortly.
    static let databaseUnavailable = ProblemError(
        .serviceUnavailable, code: "database_unavailable", detail: "The database cannot answer right now; nothing was changed. Try again shortly.",
        headers: [.retryAfter: "2"]
    )
}
