import HTTPTypes
import Hummingbird

/// Sets ``TesseraRequestContext/clientAddress`` from `Forwarded` / `X-Forwarded-For` when the peer is a trusted proxy.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let trustedProxies: TrustedProxies

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let peer = context.remoteIP, self.trustedProxies.trusts(peer) {
            context.clientAddress = self.trustedProxies.clientAddress(
                peer: peer, forwarded: request.headers[values: Self.forwarded], forwardedFor: request.headers[values: Self.xForwardedFor]
            )
        }
        return try await next(request, context)
    }

    static let forwarded = HTTPField.Name("Forwarded")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
