import TesseraTokens

/// The store cannot answer now: the database is locked by another process, unreachable, full or failing. Nothing
/// was written; the request may be retried. The server answers 503 `database_unavailable` with `Retry-After`.
public struct StoreUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for logs (never shown to clients).
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { "the database is unavailable: \(self.reason)" }
}
