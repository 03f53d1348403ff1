import HTTPTypes
import Hummingbird
import TesseraCore

/// Puts the verified caller into the context, or answers 401 (RFC 6750) / 503 (stale index).
/// Handlers never read `Authorization` themselves.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let auth: AuthService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.identity = try Self.authenticate(request, with: self.auth)
        return try await next(request, context)
    }

    /// The caller of a single `Authorization: Bearer <token>` header (two headers are refused too), checked where
    /// the header's bytes lie: for a token seen before nothing is allocated, not even a `String` of the token.
    ///
    /// Works on the UTF-8 bytes in place: splitting a 450-byte header as `Character`s showed up as the largest cost of
    /// a protected request in a profile, and indexing `String.UTF8View` as the largest left after that.
    static func authenticate(_ request: Request, with auth: AuthService) throws -> VerifiedAccessToken {
        var found: HTTPField?
        for field in request.headers where field.name == .authorization {
            guard found == nil else { throw Self.missingToken }
            found = field
        }
        guard let found else { throw Self.missingToken }
        return try found.withUnsafeBytesOfValue { header in
            guard let token = Self.bearerTokenRange(in: header) else { throw Self.missingToken }
            return try auth.authenticate(accessTokenBytes: UnsafeBufferPointer(rebasing: header[token]))
        }
    }

    static let missingToken = ProblemError.unauthorized(code: "invalid_token", detail: "A bearer access token is required.").prepared()

    /// Where the token lies in an `Authorization` header's value; nil for anything but `Bearer <token>`.
    static func bearerTokenRange(in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
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
        return start..<end
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
