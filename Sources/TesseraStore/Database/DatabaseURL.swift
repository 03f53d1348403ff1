import Foundation

/// Where the data lives, parsed from `DATABASE_URL` / `--database`.
public enum DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    /// A SQLite file.
    case sqlite(path: String)
    /// A PostgreSQL database: `postgres://user:password@host:port/database?sslmode=…`.
    case postgres(String)

    /// The default: `tessera.sqlite` in the working directory.
    public static let `default` = DatabaseURL.sqlite(path: "tessera.sqlite")

    /// Parses `sqlite:///abs/path`, `sqlite://rel/path`, a bare path, or `postgres://user:pass@host:port/db`.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw DatabaseURLError(text: text, problem: "it is empty") }
        if trimmed.hasPrefix("sqlite://") {
            let path = String(trimmed.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw DatabaseURLError(text: text, problem: "it names no file") }
            self = .sqlite(path: path)
        } else if trimmed.hasPrefix("sqlite:") {
            self = .sqlite(path: String(trimmed.dropFirst("sqlite:".count)))
        } else if trimmed.hasPrefix("postgres://") || trimmed.hasPrefix("postgresql://") {
            _ = try PostgresURL(trimmed)
            self = .postgres(trimmed)
        } else if trimmed.contains("://") {
            throw DatabaseURLError(text: text, problem: "only sqlite:// and postgres:// URLs (or a bare path) are supported")
        } else {
            self = .sqlite(path: trimmed)
        }
    }

    /// A form safe to log: no password.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite://\(path)"
        case .postgres(let url):
            guard var components = URLComponents(string: url) else { return "postgres://…" }
            if components.password != nil { components.password = "***" }
            return components.string ?? "postgres://…"
        }
    }
}

/// A `DATABASE_URL` that could not be understood.
public struct DatabaseURLError: Error, CustomStringConvertible {
    public var text: String
    public var problem: String
    public var description: String { "DATABASE_URL is not usable: \(self.problem)" }
}
