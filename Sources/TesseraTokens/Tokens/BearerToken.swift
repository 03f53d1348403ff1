/// Reading `Authorization: Bearer <token>` (RFC 6750 §2.1) from a header value's bytes, in place.
public enum BearerToken {
    /// What an `Authorization` header value holds.
    public enum Credentials: Equatable, Sendable {
        /// `Bearer` and one token: where the token lies.
        case token(Range<Int>)
        /// `Bearer` with nothing usable after it (no token, inner spaces, control or non-ASCII bytes, too long).
        case malformed
        /// Another scheme (`Basic …`) or nothing: no bearer credentials at all (RFC 6750 §3.1: no error code).
        case otherScheme
    }

    /// Longer tokens are refused unread; ours are about 450 bytes.
    public static let maximumTokenLength = 4096
    /// Longer header values are refused unread: the longest token and the scheme.
    public static let maximumLength = Self.maximumTokenLength + 16

    /// Reads a header value's bytes. Works on the UTF-8 bytes in place: splitting a 450-byte header as `Character`s
    /// showed up as the largest cost of a protected request in a profile.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Credentials {
        let scheme: StaticString = "bearer"
        guard bytes.count >= scheme.utf8CodeUnitCount else { return .otherScheme }
        for offset in 0..<scheme.utf8CodeUnitCount where bytes[offset] | 0x20 != scheme.utf8Start[offset] { return .otherScheme }
        var start = scheme.utf8CodeUnitCount
        guard start < bytes.count else { return .malformed }
        guard bytes[start] == UInt8(ascii: " ") else { return .otherScheme }
        guard bytes.count <= Self.maximumLength else { return .malformed }
        while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        var end = bytes.count
        while end > start, bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        guard start < end else { return .malformed }
        // One token of visible ASCII: no inner spaces, no control characters, nothing beyond ASCII.
        for index in start..<end where bytes[index] <= 0x20 || bytes[index] >= 0x7F { return .malformed }
        return .token(start..<end)
    }
}
