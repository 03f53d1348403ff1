import Foundation
import TesseraCore
import TesseraServer

/// Printing for people (aligned tables) and for scripts (JSON).
enum Output {
    static func printTable(header: [String], rows: [[String]]) {
        let all = [header] + rows.map { $0.map(Self.printable) }
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        for row in all {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            print(cells.joined(separator: "  "))
        }
        if rows.isEmpty { print("(none)") }
    }

    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Text from the database made safe for a terminal: control, format and unassigned characters (escape
    /// sequences, bidi overrides, NUL in a row written before identifiers were checked) are shown as `\u{…}`.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: Self.mustEscape) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if Self.mustEscape(scalar) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func mustEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate: true
        default: false
        }
    }

    static func time(_ date: Date) -> String { date.formatted(.iso8601) }
}

extension TesseraServices {
    /// The account with this email, or a user error naming it.
    func requireUser(email: String) async throws -> User {
        guard let user = try await self.auth.user(email: email) else { throw CommandError(message: "no account with the email \(email)") }
        return user
    }
}
