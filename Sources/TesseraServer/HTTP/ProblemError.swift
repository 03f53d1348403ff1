import Foundation
import Hummingbird

/// An error answered as `application/problem+json` (RFC 9457) with a stable snake_case `code`.
public struct ProblemError: Error, HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let detail: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
    }

    struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var code: String
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: try self.preparedBody ?? self.encodedBody()))
    }

    /// The body, when ``prepared()`` encoded it already.
    private var preparedBody: ByteBuffer?

    /// The same problem with its body encoded once: for the refusals a client can make us repeat at will (a
    /// revoked or malformed token, sent again and again), so that each costs a copy, not a JSON encoding.
    func prepared() -> ProblemError {
        var prepared = self
        prepared.preparedBody = try? self.encodedBody()
        return prepared
    }

    private func encodedBody() throws -> ByteBuffer {
        let body = Body(
            type: "https://tessera.dev/problems/\(self.code.replacingOccurrences(of: "_", with: "-"))",
            title: self.status.reasonPhrase,
            status: self.status.code,
            detail: self.detail,
            code: self.code
        )
        return ByteBuffer(bytes: try Self.encoder.encode(body))
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// 401 with the RFC 6750 challenge.
    static func unauthorized(code: String, detail: String) -> ProblemError {
        let escaped = detail.replacingOccurrences(of: "\"", with: "'")
        return ProblemError(
            .unauthorized, code: code, detail: detail,
            headers: [.wwwAuthenticate: "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"\(escaped)\""]
        )
    }
}
