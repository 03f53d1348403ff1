import Foundation
import TesseraCore
import TesseraServer

/// Printing for people (aligned tables) and for scripts (JSON).
enum Output {
    static func printTable(header: [String], rows: [[String]]) {
        let all = [header] + rows
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

    static func time(_ date: Date) -> String { date.formatted(.iso8601) }
}

extension TesseraServices {
    /// The account with this email, or a user error naming it.
    func requireUser(email: String) async throws -> User {
        guard let user = try await self.auth.user(email: email) else { throw CommandError(message: "no account with the email \(email)") }
        return user
    }
}
