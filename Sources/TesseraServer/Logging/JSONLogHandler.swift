import Foundation
import Logging

/// `LOG_FORMAT=json`: one JSON object per line on standard error, for a log pipeline to read without parsing text.
/// Each line has `time` (RFC 3339, UTC, milliseconds), `level`, `message` and `logger`, then the line's metadata as
/// members of their own (`request`, `route`, `status`, `durationMs`, `user`, …). Nothing here decides what is logged:
/// no log statement of the service carries a token, password or secret, whatever the format (a test reads the
/// whole log of a run for the ones it used).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (Data) -> Void

    /// Writes to standard error.
    public init(label: String) {
        self.init(label: label) { line in FileHandle.standardError.write(line) }
    }

    /// Writes each line (newline included) with `write`: for tests.
    public init(label: String, write: @escaping @Sendable (Data) -> Void) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: Any] = [:]
        let provided = self.metadataProvider?.get() ?? [:]
        for (key, value) in self.metadata.merging(provided, uniquingKeysWith: { $1 }).merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = Self.json(value)
        }
        if let error = event.error { fields["error"] = "\(error)" }
        // The four fixed members last: metadata can never overwrite them.
        fields["time"] = Self.timestamp(Date())
        fields["level"] = event.level.rawValue
        fields["message"] = "\(event.message)"
        fields["logger"] = self.label
        guard var line = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(UInt8(ascii: "\n"))
        self.write(line)
    }

    /// Metadata as JSON: strings stay strings, lists and dictionaries nest.
    static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        // Numbers stay numbers (`status`, `durationMs`), so that a pipeline can compare them.
        case .stringConvertible(let number as Int): number
        case .stringConvertible(let number as Double): number
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(Self.json)
        case .dictionary(let dictionary): dictionary.mapValues(Self.json)
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Self.format)
    }

    private static let format = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}
