import Foundation

/// Tessera's schema, step by step. Times are milliseconds since 1970 (BIGINT), ids lower-case UUID text.
public enum Migrations {
    /// Every step, oldest first.
    public static let all: [Migration] = [
        accountsSessionsAndLog, auditTrail, undoableRevocations, revocationCauses, normalizedIdentifiers, auditSubjects, sharedDeployment, bootToken, signingKeysAndClients, databaseIdentity,
        apiTokens,
        deletedAccounts,
        refreshRetries,
    ]

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

    /// Every log row records why it was made (`RevocationCause`), which decides whether an operator may undo it.
    /// Rows written before this step get their cause back from what they left: the un-revoke link, the global kind,
    /// the audit row written in the same transaction (same millisecond), or the fixed reason the service wrote.
    /// What cannot be recovered is `unknown`, which is final: a wrong guess may only ever refuse an undo.
    static let revocationCauses = Migration(
        version: 4,
        name: "revocation causes",
        statements: [
            "ALTER TABLE revocations ADD COLUMN cause TEXT",
            "UPDATE revocations SET cause = 'unrevoke' WHERE undoes_seq IS NOT NULL",
            "UPDATE revocations SET cause = 'revoke_all' WHERE cause IS NULL AND kind = 'global'",
            """
            UPDATE revocations SET cause = 'deactivated' WHERE cause IS NULL AND kind = 'subject' AND EXISTS (
                SELECT 1 FROM audit_events a WHERE a.event = 'ACCOUNT_DEACTIVATED' AND a.at = revocations.revoked_at
                AND a.subject_id = revocations.user_id)
            """,
            """
            UPDATE revocations SET cause = 'password_reset' WHERE cause IS NULL AND kind = 'subject' AND reason = 'password_reset' AND EXISTS (
                SELECT 1 FROM audit_events a WHERE a.event = 'PASSWORD_CHANGED' AND a.at = revocations.revoked_at
                AND a.subject_id = revocations.user_id)
            """,
            """
            UPDATE revocations SET cause = 'admin_revoke' WHERE cause IS NULL AND kind = 'subject' AND EXISTS (
                SELECT 1 FROM audit_events a WHERE a.event = 'REVOKE_USERS' AND a.at = revocations.revoked_at)
            """,
            """
            UPDATE revocations SET cause = CASE reason
                WHEN 'logout_all' THEN 'sign_out_everywhere' WHEN 'logout_others' THEN 'sign_out_others'
                WHEN 'password_changed' THEN 'password_changed' WHEN 'password_reset' THEN 'password_reset'
                WHEN 'refresh_token_reuse' THEN 'refresh_token_reuse' WHEN 'logout' THEN 'sign_out' ELSE 'unknown' END
            WHERE cause IS NULL
            """,
            "CREATE INDEX revocations_by_undone ON revocations (undoes_seq)",
            // Housekeeping deletes spent refresh tokens by session; without this each batch scanned the table.
            "CREATE INDEX spent_refresh_tokens_by_session ON spent_refresh_tokens (session_id)",
        ]
    )

    /// Emails are checked and normalized by one rule (``EmailAddress``, PRECIS UsernameCaseMapped). Rows written
    /// under the old rule (trim and lower-case) are rewritten to the new forms. Nothing is merged or dropped: a row
    /// whose address the new rule refuses (a NUL, a control or invisible character), or whose new form another row
    /// also has (`José` composed and decomposed), is left exactly as it was and recorded in `identity_conflicts`
    /// and the log, for an operator to resolve; until then it cannot be signed in to by its address.
    static let normalizedIdentifiers = Migration(
        version: 5,
        name: "normalized identifiers",
        statements: [
            """
            CREATE TABLE identity_conflicts (
                user_id TEXT NOT NULL,
                email TEXT NOT NULL,
                problem TEXT NOT NULL,
                other_user_id TEXT,
                found_at BIGINT NOT NULL
            )
            """
        ],
        rewrite: { db, logger in try await IdentifierRewrite.run(on: db, logger: logger) }
    )

    /// An event that acts on several accounts (a revoke of many users) lists each in `audit_subjects`, so that
    /// reading the log by user finds it from every one of them. Older such rows get their list from the
    /// comma-separated `userIds` of their details; the list goes when the row is pruned.
    static let auditSubjects = Migration(
        version: 6,
        name: "audit subjects",
        statements: [
            """
            CREATE TABLE audit_subjects (
                audit_id BIGINT NOT NULL REFERENCES audit_events (id) ON DELETE CASCADE,
                subject_id TEXT NOT NULL,
                PRIMARY KEY (audit_id, subject_id)
            )
            """,
            "CREATE INDEX audit_subjects_by_subject ON audit_subjects (subject_id, audit_id)",
        ],
        rewrite: { db, _ in try await SQLAuthStore.backfillAuditSubjects(on: db) }
    )

    /// What several instances on one database need. On PostgreSQL every log row records the transaction that wrote
    /// it (`xid`, for the snapshot-diff cursor: sequence numbers commit out of order under concurrent writers; rows
    /// written before this step get the migration's own, which every later snapshot sees). Failed sign-ins are
    /// counted in the database, so that the limits hold across instances; the key is stored only as a hash.
    static let sharedDeployment = Migration(
        version: 7,
        name: "shared deployment",
        statements: [
            "CREATE TABLE sign_in_failures (key_hash TEXT NOT NULL, at BIGINT NOT NULL)",
            "CREATE INDEX sign_in_failures_by_key ON sign_in_failures (key_hash, at)",
        ],
        postgresStatements: [
            "ALTER TABLE revocations ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()",
            "CREATE INDEX revocations_by_xid ON revocations (xid)",
        ]
    )

    /// PostgreSQL: a token that crash recovery erases (an UNLOGGED table is emptied by it), part of the identity a
    /// follower's cursor is tied to, so that a crash makes every follower reload even when the postmaster itself
    /// did not restart. Nothing on SQLite.
    static let bootToken = Migration(
        version: 8,
        name: "boot token",
        statements: [],
        postgresStatements: ["CREATE UNLOGGED TABLE tessera_boot (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)"]
    )

    /// A random name for this database, made once: part of a SQLite cursor, so that a follower's cursor from another
    /// file (recreated, or another deployment's) is refused rather than read as a position in this one. PostgreSQL
    /// names its clusters itself (``PostgresDatabaseHandle/clusterIdentity``); the row is there too, unused.
    static let databaseIdentity = Migration(
        version: 10,
        name: "database identity",
        statements: ["CREATE TABLE database_identity (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)"],
        rewrite: { db, _ in
            try await db.raw("INSERT INTO database_identity (id, token) VALUES (1, \(bind: UUID().uuidString.lowercased()))").run()
        }
    )

    /// Asymmetric signing keys live in the database so that every instance signs with the same current key; the
    /// private half is sealed (AES-GCM) under a key-encryption key that never reaches the database, and destroyed
    /// once the key's tokens have all expired. A key's life is told by its times: published at `created_at`,
    /// current from `active_from` until a later key's `active_from` or its own `retired_at`, refused from
    /// `revoked_at` (and by a `key` row in the log, which every instance applies at once). Registered clients
    /// (introspection, revocation, the feed) keep only a hash of their secret.
    static let signingKeysAndClients = Migration(
        version: 9,
        name: "signing keys and clients",
        statements: [
            """
            CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                algorithm TEXT NOT NULL,
                public_key TEXT NOT NULL,
                sealed_private_key TEXT,
                sealed_with TEXT,
                created_at BIGINT NOT NULL,
                active_from BIGINT NOT NULL,
                retired_at BIGINT,
                revoked_at BIGINT,
                destroyed_at BIGINT
            )
            """,
            """
            CREATE TABLE oauth_clients (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                secret_hash TEXT NOT NULL,
                may_introspect INTEGER NOT NULL,
                may_revoke INTEGER NOT NULL,
                may_feed INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                removed_at BIGINT
            )
            """,
            "ALTER TABLE revocations ADD COLUMN key_id TEXT",
        ]
    )

    /// Personal API tokens: only the SHA-256 of each is kept, with who made it, from where, and the user's token
    /// version and the global epoch when it was made, so that a user's or everyone's cut refuses it as it refuses
    /// the user's sessions. Revoking one writes a `token` row to the log with the token's id as its `jti`.
    static let apiTokens = Migration(
        version: 11,
        name: "api tokens",
        statements: [
            """
            CREATE TABLE api_tokens (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users (id),
                name TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                role TEXT NOT NULL,
                token_version BIGINT NOT NULL,
                epoch BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                ip TEXT,
                user_agent TEXT,
                last_used_at BIGINT,
                expires_at BIGINT NOT NULL,
                invalidated_at BIGINT
            )
            """,
            "CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at)",
        ]
    )

    /// A deleted account keeps its row as a tombstone (audit and log rows point at its id) with the time it was
    /// deleted; its email, password hash and every other personal datum are erased then (``AccountDeletion``).
    static let deletedAccounts = Migration(
        version: 12,
        name: "deleted accounts",
        statements: ["ALTER TABLE users ADD COLUMN deleted_at BIGINT"]
    )

    /// Refresh retries: a spent refresh token keeps hashes of who spent it (user agent, optional client nonce), so that
    /// the same client presenting it again within the reuse interval is told apart from a replay elsewhere; and one
    /// random secret per database, from which every instance derives the same successor of a refresh token
    /// (``RefreshSuccessor``), so that a retry is answered with the successor the first presentation got while only
    /// hashes of refresh tokens are kept.
    static let refreshRetries = Migration(
        version: 13,
        name: "refresh retries",
        statements: [
            "ALTER TABLE spent_refresh_tokens ADD COLUMN user_agent_hash TEXT",
            "ALTER TABLE spent_refresh_tokens ADD COLUMN client_nonce_hash TEXT",
            "CREATE TABLE refresh_successor_secret (id INTEGER PRIMARY KEY CHECK (id = 1), secret TEXT NOT NULL)",
        ],
        rewrite: { db, _ in
            var generator = SystemRandomNumberGenerator()
            let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
            try await db.raw("INSERT INTO refresh_successor_secret (id, secret) VALUES (1, \(bind: secret))").run()
        }
    )
}
