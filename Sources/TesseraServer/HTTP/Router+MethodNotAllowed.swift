import Hummingbird

extension Router {
    /// Answers 405 with `Allow` for a known path asked with a method it does not serve, instead of the router's 404.
    /// Call after every route is added.
    func addMethodNotAllowedFallbacks() {
        let candidates: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        var methodsByPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in self.routes {
            methodsByPath[route.path.description, default: (route.path, [])].methods.insert(route.method)
        }
        for (_, entry) in methodsByPath {
            let allowed = entry.methods.map(\.rawValue).sorted().joined(separator: ", ")
            for method in candidates where !entry.methods.contains(method) {
                self.on(entry.path, method: method) { request, _ -> Response in
                    throw ProblemError(
                        .methodNotAllowed, code: "method_not_allowed", detail: "\(request.method) is not served here; use \(allowed).",
                        headers: [.allow: allowed]
                    )
                }
            }
        }
    }
}
