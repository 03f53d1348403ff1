import Foundation
import Hummingbird
import TesseraCore

/// `POST /api/admin/explain {"token"}`: why a token is accepted or refused (``AuthService/explain(token:)``).
/// The token travels in the body, never in a URL that proxies log; the answer never repeats it.
struct ExplainController {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    struct ExplainRequest: Decodable {
        var token: String
    }

    func addRoutes(to admin: RouterGroup<Context>) {
        admin.post("explain", use: self.explain)
    }

    @Sendable func explain(request: Request, context: Context) async throws -> TokenExplanation {
        let body = try await request.decodeJSON(as: ExplainRequest.self, context: context)
        return try await self.auth.explain(token: body.token)
    }
}

extension TokenExplanation: ResponseEncodable {}
