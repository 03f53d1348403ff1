import Foundation
import Hummingbird

/// An error answered as `application/problem+json` (RFC 9457) with a stable snake_case `code`.
public struct ProblemError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
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
        let body = Body(
            type: "https://tessera.dev/problems/\(self.code.replacingOccurrences(of: "_", with: "-"))",
            title: self.status.reasonPhrase,
            status: self.status.code,
            detail: self.detail,
            code: self.code
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(body)
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// 401 with the RFC 6750 challenge.
    static func unauthorized(code: String, detail: String) -> ProblemError {
        let escaped = detail.replacingOccurrences(of: "\"", with: "'")
        return ProblemError(
            .unauthorized, code: code, detail: detail,
            headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\", error_description=\"\(escaped)\""]
        )
    }
}
