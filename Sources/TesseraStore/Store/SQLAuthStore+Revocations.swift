import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    /// Each target's row is locked before its log row is appended (`SELECT … FOR UPDATE` on PostgreSQL), so that per
    /// target the log's `seq` order is the commit order, which the index relies on; users are locked in id order,
    /// so that two revokes of overlapping lists cannot deadlock. Other instances are told after the commit.
    public func revoke(_ request: RevocationRequest) async throws -> RevocationOutcome {
        if let outcome = try await self.signOutInOneStatement(request) {
            self.database.announceRevocations()
            return outcome
        }
        let lock = self.database.rowLock
        let sessionLock = self.database.rowLock(of: "s")
        let outcome = try await self.database.transaction { db in
            var entries: [RevocationEntry] = []
            switch request.target {
            case .session(let sessionId, let until):
                entries.append(
                    try await Self.revokeSession(
                        sessionId, until: until, at: request.at, cause: request.cause, actorId: request.actorId, reason: request.reason, on: db
                    )
                )
            case .subjects(let userIds):
                for userId in userIds.sorted(by: { Column.id($0) < Column.id($1) }) {
                    entries.append(try await Self.revokeSubject(userId, request: request, lock: lock, on: db))
                }
            case .global:
                entries.append(try await Self.revokeEveryone(request: request, lock: lock, on: db))
            case .token(let jti, let until):
                entries.append(
                    try await Self.appendEntry(
                        .token(jti: jti, until: until), cause: request.cause, at: request.at, actorId: request.actorId, reason: request.reason, on: db
                    )
                )
            }
            var reissued: SessionGrant?
            if let reissue = request.reissue {
                reissued = try await Self.rekey(
                    sessionId: reissue.sessionId, refreshTokenHash: reissue.refreshTokenHash, at: request.at, lock: sessionLock, on: db
                )
            }
            for record in request.audit {
                try await Self.insertAudit(record, on: db)
            }
            return RevocationOutcome(entries: entries, reissued: reissued)
        }
        self.database.announceRevocations()
        return outcome
    }

    /// The commonest write of all, a sign-out (one session, one audit row), batched on PostgreSQL: the sign-outs
    /// that arrive together are one statement (``signOutTogether(_:on:)``) through ``CommitBatcher``. SQLite, which
    /// has group commit of its own and no round trips, takes the general path. Nil when the request is not that
    /// simple.
    private func signOutInOneStatement(_ request: RevocationRequest) async throws -> RevocationOutcome? {
        guard let signOuts = self.signOuts, case .session(let sessionId, let until) = request.target, request.reissue == nil,
            request.newPasswordHash == nil, !request.deactivate, request.audit.count == 1, let record = request.audit.first, record.subjectIds.isEmpty
        else { return nil }
        let signOut = SignOut(
            session_id: Column.id(sessionId), until_at: Column.millis(until), revoked_at: Column.millis(request.at),
            actor_id: request.actorId.map(Column.id), reason: request.reason, cause: request.cause.rawValue, audit_at: Column.millis(record.at),
            event: record.event.rawValue, audit_actor_id: record.actorId.map(Column.id), subject_id: record.subjectId.map(Column.id),
            audit_session_id: record.sessionId.map(Column.id), terminal_id: record.terminalId, ip: record.ip, user_agent: record.userAgent,
            details: try Self.encodedDetails(record)
        )
        let seq = try await signOuts.submit(signOut)
        return RevocationOutcome(
            entries: [RevocationEntry(seq: seq, kind: .session(id: sessionId, until: until), revokedAt: request.at, actorId: request.actorId, reason: request.reason)]
        )
    }

    /// One sign-out as the batched statement reads it: the names are its columns; `n` is its place in the batch.
    struct SignOut: Encodable, Sendable {
        var n = 0
        var session_id: String
        var until_at: Int64
        var revoked_at: Int64
        var actor_id: String?
        var reason: String?
        var cause: String
        var audit_at: Int64
        var event: String
        var audit_actor_id: String?
        var subject_id: String?
        var audit_session_id: String?
        var terminal_id: String?
        var ip: String?
        var user_agent: String?
        var details: String
    }

    /// Sign-outs, any number, as one statement on PostgreSQL: the sessions' updates, their log rows and their audit
    /// rows in data-modifying CTEs, which PostgreSQL runs as one atomic transaction with one commit. The batch
    /// travels as one JSON parameter (`json_to_recordset`), so the statement's text is the same for any batch.
    /// Each log row's `seq` is drawn in the input (`nextval`), so that each sign-out is answered with its own.
    /// The sessions are locked in id order first (`locked`), so that two batches never deadlock on each other; a
    /// session signed out twice in one batch keeps the first one's time. Returns the `seq`s in the order of
    /// `signOuts`.
    static func signOutTogether(_ signOuts: [SignOut], on database: any SQLDatabaseHandle) async throws -> [Int64] {
        var numbered = signOuts
        for index in numbered.indices { numbered[index].n = index }
        let input = String(decoding: try JSONEncoder().encode(numbered), as: UTF8.self)
        let rows = try await database.statement { db in
            try await db.raw(
                """
                WITH input AS MATERIALIZED (
                    SELECT i.*, nextval(pg_get_serial_sequence('revocations', 'seq')) AS seq
                    FROM json_to_recordset(\(bind: input)::json) AS i(
                        n int4, session_id text, until_at int8, revoked_at int8, actor_id text, reason text, cause text, audit_at int8,
                        event text, audit_actor_id text, subject_id text, audit_session_id text, terminal_id text, ip text, user_agent text,
                        details text)
                ), locked AS (
                    SELECT id FROM sessions WHERE id IN (SELECT session_id FROM input) ORDER BY id FOR UPDATE
                ), cut AS (
                    UPDATE sessions s SET invalidated_at = i.revoked_at, invalidated_reason = i.reason
                    FROM (SELECT DISTINCT ON (session_id) * FROM input ORDER BY session_id, n) i, locked
                    WHERE locked.id = i.session_id AND s.id = i.session_id AND s.invalidated_at IS NULL
                ), logged AS (
                    INSERT INTO revocations (seq, kind, session_id, until_at, revoked_at, actor_id, reason, cause)
                    SELECT seq, 'session', session_id, until_at, revoked_at, actor_id, reason, cause FROM input ORDER BY n
                ), audited AS (
                    INSERT INTO audit_events (at, event, actor_id, subject_id, session_id, terminal_id, ip, user_agent, details)
                    SELECT audit_at, event, audit_actor_id, subject_id, audit_session_id, terminal_id, ip, user_agent, details FROM input ORDER BY n
                )
                SELECT n, seq FROM input
                """
            ).all()
        }
        var seqs = [Int64?](repeating: nil, count: signOuts.count)
        for row in rows {
            let n = try row.decode(column: "n", as: Int.self)
            guard seqs.indices.contains(n) else { throw CorruptRow(description: "a sign-out batch answered for a row it did not send") }
            seqs[n] = try row.decode(column: "seq", as: Int64.self)
        }
        return try seqs.map { seq in
            guard let seq else { throw CorruptRow(description: "the revocation row was not written") }
            return seq
        }
    }

    static func revokeSession(
        _ sessionId: UUID, until: Date, at: Date, cause: RevocationCause, actorId: UUID?, reason: String?, on db: any SQLDatabase
    ) async throws -> RevocationEntry {
        try await db.raw(
            """
            UPDATE sessions SET invalidated_at = \(bind: Column.millis(at)), invalidated_reason = \(bind: reason)
            WHERE id = \(bind: Column.id(sessionId)) AND invalidated_at IS NULL
            """
        ).run()
        return try await Self.appendEntry(.session(id: sessionId, until: until), cause: cause, at: at, actorId: actorId, reason: reason, on: db)
    }

    /// A deleted account is not found: its tokens were cut for good when it was deleted, and nothing may be done to
    /// its tombstone.
    static func revokeSubject(_ userId: UUID, request: RevocationRequest, lock: String, on db: any SQLDatabase) async throws -> RevocationEntry {
        let id = Column.id(userId)
        guard
            let before = try await db.raw(
                "SELECT accepted_from_version FROM users WHERE id = \(bind: id) AND deleted_at IS NULL\(unsafeRaw: lock)"
            ).first()
        else {
            throw AuthError.userNotFound
        }
        let previous = try before.decode(column: "accepted_from_version", as: Int64.self)
        var assignments: SQLQueryString = "token_version = token_version + 1, accepted_from_version = token_version + 1"
        assignments += ", updated_at = \(bind: Column.millis(request.at))"
        if let hash = request.newPasswordHash { assignments += ", password_hash = \(bind: hash)" }
        if request.deactivate { assignments += ", is_active = 0" }
        try await db.raw("UPDATE users SET " + assignments + " WHERE id = \(bind: id)").run()
        guard let row = try await db.raw("SELECT accepted_from_version FROM users WHERE id = \(bind: id)").first() else {
            throw AuthError.userNotFound
        }
        let acceptedFrom = try row.decode(column: "accepted_from_version", as: Int64.self)
        return try await Self.appendEntry(
            .subject(userId: userId, acceptedFromVersion: acceptedFrom), cause: request.cause, at: request.at, actorId: request.actorId, reason: request.reason,
            previousValue: previous, on: db
        )
    }

    private static func revokeEveryone(request: RevocationRequest, lock: String, on db: any SQLDatabase) async throws -> RevocationEntry {
        let previous = try await Self.acceptedEpoch(lock: lock, on: db)
        try await db.raw("UPDATE global_state SET epoch = epoch + 1, accepted_epoch = epoch + 1 WHERE id = 1").run()
        let epoch = try await Self.acceptedEpoch(on: db)
        return try await Self.appendEntry(
            .global(epoch: epoch), cause: request.cause, at: request.at, actorId: request.actorId, reason: request.reason, previousValue: previous, on: db
        )
    }

    /// The global cut-off; `lock` (``SQLDatabaseHandle/rowLock``) when the transaction is about to change it.
    static func acceptedEpoch(lock: String = "", on db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT accepted_epoch FROM global_state WHERE id = 1\(unsafeRaw: lock)").first()?.decode(column: "accepted_epoch", as: Int64.self) ?? 0
    }

    /// Moves a live session to its user's current token version and the current epoch, with a new refresh token.
    /// Its old refresh token joins the spent ones, so a copy of it presented later is caught as reuse.
    /// The session's row is locked as a refresh locks it, so that a refresh of the same session at the same moment
    /// goes first or after, never between the read of its refresh token and the update.
    private static func rekey(sessionId: UUID, refreshTokenHash: String, at: Date, lock: String, on db: any SQLDatabase) async throws -> SessionGrant {
        let id = Column.id(sessionId)
        let now = Column.millis(at)
        guard
            let row = try await db.raw(
                """
                SELECT s.refresh_token_hash, u.\(unsafeRaw: Self.userColumns.replacingOccurrences(of: ", ", with: ", u.")), u.token_version AS user_version,
                       g.epoch AS global_epoch
                FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN global_state g
                WHERE s.id = \(bind: id) AND s.invalidated_at IS NULL AND s.expires_at > \(bind: now) AND u.is_active = 1\(unsafeRaw: lock)
                """
            ).first()
        else { throw AuthError.tokenRevoked }
        let user = try row.user()
        let oldHash = try row.decode(column: "refresh_token_hash", as: String.self)
        let version = try row.decode(column: "user_version", as: Int64.self)
        let epoch = try row.decode(column: "global_epoch", as: Int64.self)
        try await db.raw(
            """
            UPDATE sessions SET token_version = \(bind: version), epoch = \(bind: epoch), refresh_token_hash = \(bind: refreshTokenHash),
                   last_seen_at = \(bind: now)
            WHERE id = \(bind: id)
            """
        ).run()
        try await db.raw(
            "INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at) VALUES (\(bind: oldHash), \(bind: id), \(bind: now))"
        ).run()
        guard let session = try await db.raw("SELECT * FROM sessions WHERE id = \(bind: id)").first()?.session() else {
            throw AuthError.tokenRevoked
        }
        return SessionGrant(session: session, user: user)
    }

    static func appendEntry(
        _ kind: RevocationKind, cause: RevocationCause, at: Date, actorId: UUID?, reason: String?, previousValue: Int64? = nil, undoesSeq: Int64? = nil,
        on db: any SQLDatabase
    ) async throws -> RevocationEntry {
        var jti: String?
        var sessionId: String?
        var userId: String?
        var acceptedFrom: Int64?
        var epoch: Int64?
        var until: Int64?
        var keyId: String?
        switch kind {
        case .token(let id, let expiry):
            jti = Column.id(id)
            until = Column.millis(expiry)
        case .session(let id, let expiry):
            sessionId = Column.id(id)
            until = Column.millis(expiry)
        case .subject(let id, let version):
            userId = Column.id(id)
            acceptedFrom = version
        case .global(let value):
            epoch = value
        case .key(let kid):
            keyId = kid
        }
        guard
            let row = try await db.raw(
                """
                INSERT INTO revocations (kind, jti, session_id, user_id, accepted_from_version, epoch, until_at, revoked_at, actor_id, reason,
                                         previous_value, undoes_seq, cause, key_id)
                VALUES (\(bind: kind.name), \(bind: jti), \(bind: sessionId), \(bind: userId), \(bind: acceptedFrom), \(bind: epoch), \(bind: until),
                        \(bind: Column.millis(at)), \(bind: actorId.map(Column.id)), \(bind: reason), \(bind: previousValue), \(bind: undoesSeq), \(bind: cause.rawValue),
                        \(bind: keyId))
                RETURNING seq
                """
            ).first()
        else { throw CorruptRow(description: "the revocation row was not written") }
        return RevocationEntry(seq: try row.decode(column: "seq", as: Int64.self), kind: kind, revokedAt: at, actorId: actorId, reason: reason)
    }
}
