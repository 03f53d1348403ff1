import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request an id, answered in `X-Request-Id` and carried in the request's log lines (`request`), so
/// that an answer a client reports and the server's logs can be matched. A client's own id is kept when it is
/// well-formed (1 to 128 characters of letters, digits, `-`, `_`, `.`, `:`), as a proxy in front may have set it;
/// anything else is replaced, so that an id can never smuggle a line break or markup into a log.
struct RequestIdMiddleware<Context: RequestContext>: RouterMiddleware {
    static var headerName: HTTPField.Name { HTTPField.Name("X-Request-Id")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = request.headers[Self.headerName].flatMap { Self.isWellFormed($0) ? $0 : nil } ?? Self.newId()
        var context = context
        context.logger[metadataKey: "request"] = .string(id)
        // Hummingbird's own per-connection counter would be a second, unanswered id on every line.
        context.logger[metadataKey: "hb.request.id"] = nil
        var response = try await next(request, context)
        response.headers[Self.headerName] = id
        return response
    }

    static func isWellFormed(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
            }
    }

    /// 128 random bits, as a lower-case UUID.
    static func newId() -> String {
        UUID().uuidString.lowercased()
    }
}
