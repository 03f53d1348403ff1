import Foundation
import SQLKit
import TesseraCore

/// ``AuthStore`` over SQL: SQLite and PostgreSQL run the same statements; what differs is in ``SQLDatabaseHandle``.
///
/// Sessions, refresh rotation and revocations are in `SQLAuthStore+Sessions.swift` and
/// `SQLAuthStore+Revocations.swift`; the audit trail in `SQLAuthStore+Audit.swift`.
public struct SQLAuthStore: AuthStore {
    public let database: any SQLDatabaseHandle
    /// Sign-outs that arrive together, written as one statement (PostgreSQL; nil on SQLite, whose handle has group
    /// commit of its own).
    let signOuts: CommitBatcher<SignOut, Int64>?

    public init(database: any SQLDatabaseHandle) {
        self.database = database
        self.signOuts =
            database.flavor == .postgres
            ? CommitBatcher(name: "sign_outs", lanes: Self.signOutLanes, maximumBatch: 256, retryAlone: PostgresDatabaseHandle.wroteNothing) { batch in
                try await Self.signOutTogether(batch, on: database)
            } : nil
    }

    /// How many sign-out batches may be in flight at once: while one waits for its commit's flush, the next gathers.
    static let signOutLanes = 4

    static let userColumns = "id, email, role, is_active, created_at"

    public func createUser(_ user: NewUser, audit: AuditRecord) async throws -> User {
        try await self.database.transaction { db in
            let now = Column.millis(user.createdAt)
            // Two registrations of one address at once (two instances): the second waits for the first's unique
            // entry and inserts nothing, and is told the address is taken, not a constraint violation.
            let inserted = try await db.raw(
                """
                INSERT INTO users (id, email, email_normalized, password_hash, role, is_active, token_version, accepted_from_version, created_at, updated_at)
                VALUES (\(bind: Column.id(user.id)), \(bind: user.email), \(bind: user.normalizedEmail), \(bind: user.passwordHash),
                        \(bind: user.role.rawValue), 1, 0, 0, \(bind: now), \(bind: now))
                ON CONFLICT (email_normalized) DO NOTHING
                RETURNING id
                """
            ).first()
            guard inserted != nil else { throw AuthError.emailTaken }
            try await Self.insertAudit(audit, on: db)
            return User(id: user.id, email: user.email, role: user.role, isActive: true, createdAt: Column.date(now))
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await self.database.read { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE id = \(bind: Column.id(id))").first()?.user()
        }
    }

    public func credentials(normalizedEmail: String) async throws -> UserCredentials? {
        try await self.database.read { db in
            guard
                let row = try await db.raw(
                    "SELECT \(unsafeRaw: Self.userColumns), password_hash FROM users WHERE email_normalized = \(bind: normalizedEmail)"
                ).first()
            else { return nil }
            return UserCredentials(user: try row.user(), passwordHash: try row.decode(column: "password_hash", as: String.self))
        }
    }

    public func ping() async throws {
        _ = try await self.database.read { db in
            try await db.raw("SELECT epoch FROM global_state WHERE id = 1").first()?.decode(column: "epoch", as: Int64.self)
        }
    }
}

extension SQLAuthStore {
    public func session(refreshTokenHash: String, now: Date) async throws -> SessionGrant? {
        try await self.database.read { db in
            guard
                let row = try await db.raw(
                    """
                    SELECT s.*, u.email AS u_email, u.role AS u_role, u.is_active AS u_is_active, u.created_at AS u_created_at, u.id AS u_id
                    FROM sessions s JOIN users u ON u.id = s.user_id
                    WHERE s.refresh_token_hash = \(bind: refreshTokenHash) AND s.invalidated_at IS NULL AND s.expires_at > \(bind: Column.millis(now))
                    """
                ).first()
            else { return nil }
            return SessionGrant(session: try row.session(), user: try row.user(prefix: "u_"))
        }
    }
}
