/// Tessera's schema, step by step. Times are milliseconds since 1970 (BIGINT), ids lower-case UUID text.
public enum Migrations {
    /// Every step, oldest first.
    public static let all: [Migration] = [accountsSessionsAndLog, auditTrail, undoableRevocations]

    /// The latest schema version.
    public static var latestVersion: Int { all.last?.version ?? 0 }

    static let accountsSessionsAndLog = Migration(
        version: 1,
        name: "accounts, sessions and the revocation log",
        statements: [
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL,
                email_normalized TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL,
                is_active INTEGER NOT NULL DEFAULT 1,
                token_version BIGINT NOT NULL DEFAULT 0,
                accepted_from_version BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE global_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                epoch BIGINT NOT NULL,
                accepted_epoch BIGINT NOT NULL
            )
            """,
            "INSERT INTO global_state (id, epoch, accepted_epoch) VALUES (1, 0, 0)",
            """
            CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users (id),
                refresh_token_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                ip TEXT,
                user_agent TEXT,
                device_name TEXT,
                terminal_id TEXT,
                token_version BIGINT NOT NULL,
                epoch BIGINT NOT NULL,
                invalidated_at BIGINT,
                invalidated_reason TEXT
            )
            """,
            "CREATE INDEX sessions_by_user ON sessions (user_id, last_seen_at)",
            """
            CREATE TABLE spent_refresh_tokens (
                token_hash TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions (id),
                spent_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE revocations (
                seq {{SERIAL}},
                kind TEXT NOT NULL,
                jti TEXT,
                session_id TEXT,
                user_id TEXT,
                accepted_from_version BIGINT,
                epoch BIGINT,
                until_at BIGINT,
                revoked_at BIGINT NOT NULL,
                actor_id TEXT,
                reason TEXT
            )
            """,
        ]
    )

    static let auditTrail = Migration(
        version: 2,
        name: "audit trail",
        statements: [
            """
            CREATE TABLE audit_events (
                id {{SERIAL}},
                at BIGINT NOT NULL,
                event TEXT NOT NULL,
                actor_id TEXT,
                subject_id TEXT,
                session_id TEXT,
                terminal_id TEXT,
                ip TEXT,
                user_agent TEXT,
                details TEXT NOT NULL
            )
            """,
            "CREATE INDEX audit_events_by_subject ON audit_events (subject_id, id)",
            "CREATE INDEX audit_events_by_actor ON audit_events (actor_id, id)",
            "CREATE INDEX audit_events_by_event ON audit_events (event, id)",
            "CREATE INDEX audit_events_by_time ON audit_events (at)",
        ]
    )

    /// Un-revoke is a new row that restores the cutoff a revoke replaced: each subject and global row records the
    /// value it replaced, and an un-revoke row names the row it undoes.
    static let undoableRevocations = Migration(
        version: 3,
        name: "undoable revocations",
        statements: [
            "ALTER TABLE revocations ADD COLUMN previous_value BIGINT",
            "ALTER TABLE revocations ADD COLUMN undoes_seq BIGINT",
            "CREATE INDEX revocations_by_user ON revocations (user_id, seq)",
        ]
    )
}
