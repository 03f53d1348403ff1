import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// Reads and decodes a JSON body of at most the context's upload limit, turning every way it can be wrong into
    /// a problem with a clear detail: 415 for another media type, 413 when too large, 400 for malformed JSON, a
    /// missing field or a wrong type. Values are never echoed back (they may be passwords).
    func decodeJSON<T: Decodable>(as type: T.Type, context: some RequestContext) async throws -> T {
        if let contentType = self.headers[.contentType], let mediaType = MediaType(from: contentType) {
            guard mediaType.isType(.applicationJson) || mediaType.subType.hasSuffix("+json") else {
                throw ProblemError(.unsupportedMediaType, code: "unsupported_media_type", detail: "Send the body as application/json.")
            }
        }
        let buffer = try await self.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            throw ProblemError(.badRequest, code: "invalid_body", detail: "A JSON body is required.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw ProblemError(.badRequest, code: "invalid_body", detail: Self.describe(error))
        }
    }

    /// Like ``decodeJSON(as:context:)``, but an empty body is allowed and gives nil (for optional bodies such as `{"reason"}`).
    func decodeOptionalJSON<T: Decodable>(as type: T.Type, context: some RequestContext) async throws -> T? {
        let buffer = try await self.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return nil }
        var copy = self
        copy.body = .init(buffer: buffer)
        return try await copy.decodeJSON(as: type, context: context)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath.map(\.stringValue) + (key.map { [$0.stringValue] } ?? [])
            return keys.isEmpty ? "the body" : "'" + keys.joined(separator: ".") + "'"
        }
        switch error {
        case .keyNotFound(let key, let context): return "The field \(path(context, key)) is required."
        case .valueNotFound(_, let context): return "The field \(path(context)) must not be null."
        case .typeMismatch(let type, let context): return "The field \(path(context)) must be \(Self.describe(type))."
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "The body is not valid JSON." : "The field \(path(context)) has an invalid value."
        @unknown default: return "The body is not the JSON this route expects."
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Double.Type: "a number"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
