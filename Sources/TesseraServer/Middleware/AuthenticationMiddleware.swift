import Hummingbird
import TesseraCore

/// Puts the verified caller into the context, or answers 401 (RFC 6750) / 503 (stale index).
/// Handlers never read `Authorization` themselves.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearerToken(in: request) else {
            throw ProblemError.unauthorized(code: "invalid_token", detail: "A bearer access token is required.")
        }
        var context = context
        context.identity = try await self.auth.authenticate(accessToken: token)
        return try await next(request, context)
    }

    /// The token of a single `Authorization: Bearer <token>` header, or nil for anything else (two headers are
    /// refused too).
    ///
    /// Works on the UTF-8 bytes in place: splitting a 450-byte header as `Character`s showed up as the largest cost of
    /// a protected request in a profile, and indexing `String.UTF8View` as the largest left after that.
    static func bearerToken(in request: Request) -> String? {
        var found: String?
        for field in request.headers where field.name == .authorization {
            guard found == nil else { return nil }
            found = field.value
        }
        guard var header = found else { return nil }
        return header.withUTF8 { Self.bearerToken(in: $0) }
    }

    static func bearerToken(in bytes: UnsafeBufferPointer<UInt8>) -> String? {
        guard bytes.count <= AccessTokenVerifier.maximumTokenLength + 16 else { return nil }
        let scheme: StaticString = "bearer"
        guard bytes.count > scheme.utf8CodeUnitCount else { return nil }
        for offset in 0..<scheme.utf8CodeUnitCount where bytes[offset] | 0x20 != scheme.utf8Start[offset] { return nil }
        var start = scheme.utf8CodeUnitCount
        guard bytes[start] == UInt8(ascii: " ") else { return nil }
        while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        var end = bytes.count
        while end > start, bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        guard start < end else { return nil }
        // One token of visible ASCII: no inner spaces, no control characters, nothing beyond ASCII.
        for index in start..<end where bytes[index] <= 0x20 || bytes[index] >= 0x7F { return nil }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }
}

/// Refuses callers without the admin role with 403 `forbidden`.
struct AdminMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard try context.requireIdentity().role == .admin else { throw AuthError.forbidden }
        return try await next(request, context)
    }
}
