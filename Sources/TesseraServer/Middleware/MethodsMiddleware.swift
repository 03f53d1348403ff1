import HTTPTypes
import Hummingbird

/// HTTP method semantics for every path the router knows (RFC 9110 §9): `OPTIONS` answers 204 with `Allow`, and any
/// other method a path does not serve — `TRACE`, `CONNECT`, `PROPFIND` — answers 405 with `Allow`; a method outside
/// the standard ones on an unknown path answers 501. (`HEAD` is the router's own `.autoGenerateHeadEndpoints`; a
/// method token swift-nio's HTTP parser does not know at all is refused by the parser with 400 before any route.)
/// Only requests the router could not match come here, so the routes served cost nothing more.
struct MethodsMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The methods each route path serves.
    let routes: [(path: RouterPath, methods: Set<HTTPRequest.Method>)]

    init(routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in routes { byPath[route.path.description, default: (route.path, [])].methods.insert(route.method) }
        self.routes = byPath.values.sorted { $0.path.description < $1.path.description }
    }

    static var standardMethods: Set<HTTPRequest.Method> { [.get, .head, .post, .put, .patch, .delete, .options, .trace, .connect] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let served = self.methods(for: request.uri.path) else {
                guard Self.standardMethods.contains(request.method) else {
                    throw ProblemError(.notImplemented, code: "method_not_implemented", detail: "\(request.method) is not a method this server knows.")
                }
                throw error
            }
            var allowed = served
            if served.contains(.get) { allowed.insert(.head) }
            allowed.insert(.options)
            let allow = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            switch request.method {
            case .options:
                return Response(status: .noContent, headers: [.allow: allow])
            default:
                throw ProblemError(
                    .methodNotAllowed, code: "method_not_allowed", detail: "\(request.method) is not served here; use \(allow).", headers: [.allow: allow]
                )
            }
        }
    }

    /// The methods served at a request path, or nil when no route has that path.
    func methods(for path: String) -> Set<HTTPRequest.Method>? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var found: Set<HTTPRequest.Method>?
        for route in self.routes where route.path.components.count == segments.count {
            if zip(route.path.components, segments).allSatisfy({ $0 ~= $1 }) { found = (found ?? []).union(route.methods) }
        }
        return found
    }
}
