import Foundation
import SQLKit
import Synchronization
import TesseraCore

/// Failed sign-ins counted in the database, so that every instance on it sees the same counts: an attacker who
/// spreads guesses over instances gets the limit once, not once per instance. Keys (an account and an address) are
/// stored only as their SHA-256. Each key keeps at most the failures the limit needs; every so often a record also
/// deletes every failure past the longest window, so that invented keys cannot grow the table without bound.
public final class SQLFailureCounter: FailureCounter {
    let database: any SQLDatabaseHandle
    private let records = Atomic<Int>(0)
    /// One record in this many also sweeps failures older than their window.
    static let sweepEvery = 256

    public init(database: any SQLDatabaseHandle) {
        self.database = database
    }

    /// The hex SHA-256 of a key, as refresh tokens are stored.
    static func hash(_ key: String) -> String {
        OpaqueToken.hash(key)
    }

    public func failures(for key: String, since: Date) async throws -> [Date] {
        let hash = Self.hash(key)
        return try await self.database.read { db in
            try await db.raw(
                "SELECT at FROM sign_in_failures WHERE key_hash = \(bind: hash) AND at > \(bind: Column.millis(since)) ORDER BY at"
            ).all().map { Column.date(try $0.decode(column: "at", as: Int64.self)) }
        }
    }

    public func record(_ key: String, at now: Date, keepingAtMost limit: Int, window: Duration) async throws {
        let hash = Self.hash(key)
        let at = Column.millis(now)
        let horizon = Column.millis(now.addingTimeInterval(-window.timeInterval))
        let sweep = self.records.wrappingAdd(1, ordering: .relaxed).newValue % Self.sweepEvery == 0
        try await self.database.transaction { db in
            try await db.raw("INSERT INTO sign_in_failures (key_hash, at) VALUES (\(bind: hash), \(bind: at))").run()
            try await db.raw(
                """
                DELETE FROM sign_in_failures WHERE key_hash = \(bind: hash) AND (at <= \(bind: horizon) OR at < (
                    SELECT at FROM sign_in_failures WHERE key_hash = \(bind: hash) ORDER BY at DESC LIMIT 1 OFFSET \(literal: max(0, limit - 1))))
                """
            ).run()
        }
        // The sweep is its own transaction, and a failed one (a deadlock with a concurrent per-key delete) is only
        // retried at a later record: it must never turn a failed sign-in's answer into a 503.
        if sweep {
            _ = try? await self.database.transaction { db in try await db.raw("DELETE FROM sign_in_failures WHERE at <= \(bind: horizon)").run() }
        }
    }

    public func reset(_ key: String) async throws {
        let hash = Self.hash(key)
        try await self.database.transaction { db in
            try await db.raw("DELETE FROM sign_in_failures WHERE key_hash = \(bind: hash)").run()
        }
    }
}
