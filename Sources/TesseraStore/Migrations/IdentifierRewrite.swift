import Foundation
import Logging
import SQLKit
import TesseraCore

/// Rewrites stored emails to ``EmailAddress``'s forms (migration 5), refusing to merge or drop any account.
enum IdentifierRewrite {
    struct Row {
        let id: String
        let email: String
        let normalized: String
        let address: EmailAddress?
    }

    /// The bytes of the hex text the database gave (`hex()` in SQLite, `encode(…, 'hex')` in PostgreSQL).
    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...($0 + 1)], as: UTF8.self), radix: 16) }
    }

    static func run(on db: any SQLDatabase, logger: Logger) async throws {
        // The address is read as hex: SQLite hands text back only up to a NUL, and a NUL is what hid a second account.
        let hex = db.dialect.name == "sqlite" ? "hex(email)" : "encode(convert_to(email, 'UTF8'), 'hex')"
        let rows = try await db.raw("SELECT id, \(unsafeRaw: hex) AS email_hex, email_normalized FROM users ORDER BY created_at, id").all().map { row in
            let email = String(decoding: Self.bytes(hex: try row.decode(column: "email_hex", as: String.self)), as: UTF8.self)
            return Row(
                id: try row.decode(column: "id", as: String.self), email: email,
                normalized: try row.decode(column: "email_normalized", as: String.self), address: try? EmailAddress(email)
            )
        }
        let byNewForm = Dictionary(grouping: rows.filter { $0.address != nil }, by: { $0.address?.normalized ?? "" })
        let oldForms = Dictionary(rows.map { ($0.normalized, $0.id) }, uniquingKeysWith: { first, _ in first })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var conflicts: [(row: Row, problem: String, other: String?)] = []
        for row in rows {
            guard let address = row.address else {
                conflicts.append((row, "invalid", nil))
                continue
            }
            if let other = byNewForm[address.normalized]?.first(where: { $0.id != row.id }) {
                conflicts.append((row, "collides", other.id))
                continue
            }
            if let holder = oldForms[address.normalized], holder != row.id {
                conflicts.append((row, "collides", holder))
                continue
            }
            guard address.normalized != row.normalized || address.preserved != row.email else { continue }
            try await db.raw(
                "UPDATE users SET email = \(bind: address.preserved), email_normalized = \(bind: address.normalized) WHERE id = \(bind: row.id)"
            ).run()
        }
        for conflict in conflicts {
            try await db.raw(
                """
                INSERT INTO identity_conflicts (user_id, email, problem, other_user_id, found_at)
                VALUES (\(bind: conflict.row.id), \(bind: conflict.row.email), \(bind: conflict.problem), \(bind: conflict.other), \(bind: now))
                """
            ).run()
            logger.warning(
                "account left as it was: its email is \(conflict.problem == "invalid" ? "not acceptable under the identifier rule" : "indistinguishable from another account's")",
                metadata: ["user": "\(conflict.row.id)", "other": "\(conflict.other ?? "-")", "problem": "\(conflict.problem)"]
            )
        }
    }
}
