import Foundation
import TesseraTokens

/// Durable storage for accounts, sessions, the revocation log and the audit trail.
///
/// Every method is one transaction: the state change, its revocation rows and its audit rows commit together or
/// not at all. `SQLAuthStore` in `TesseraStore` implements it over SQLite and PostgreSQL.
public protocol AuthStore: Sendable {
    /// Creates an account; throws ``AuthError/emailTaken`` when the normalized email exists.
    func createUser(_ user: NewUser, audit: AuditRecord) async throws -> User
    /// The account with this id.
    func user(id: UUID) async throws -> User?
    /// The accounts with these ids, in one read.
    func users(ids: [UUID]) async throws -> [User]
    /// The account with this normalized email and its password hash.
    func credentials(normalizedEmail: String) async throws -> UserCredentials?

    /// Opens a session at the user's current token version and the current epoch.
    func openSession(_ session: NewSession, audit: AuditRecord) async throws -> SessionGrant
    /// Spends a refresh token and stores its successor. A spent token presented again by the same client within the
    /// rotation's reuse interval, while its successor is current, is answered with that session again
    /// (``RefreshOutcome/retried(_:)``); presented again in any other way it revokes its session.
    func rotateRefreshToken(_ rotation: RefreshRotation) async throws -> RefreshOutcome
    /// The secret refresh-token successors are derived from (``RefreshSuccessor``): made once per database, so that
    /// every instance on it derives the same successor.
    func refreshSuccessorSecret() async throws -> String
    /// The user's live sessions: not invalidated, not expired, not cut off by a subject or global revocation.
    func liveSessions(userId: UUID, now: Date) async throws -> [Session]

    /// Appends revocation rows with their state changes and audit rows; returns the rows with their `seq`.
    func revoke(_ request: RevocationRequest) async throws -> RevocationOutcome
    /// Log rows with `seq` above the given one, in `seq` order: for reading the log (the CLI, tests). A follower
    /// uses ``readRevocationLog(after:pageSize:onPage:)``, which cannot skip a row that commits late.
    func revocations(after seq: Int64, limit: Int) async throws -> [RevocationEntry]
    /// Every log row committed since `cursor` (all of them when it is nil), handed to `onPage` in pages of at most
    /// `pageSize` (pages in `seq` order, rows within a page in any order: the index needs none), returns the
    /// cursor to continue from. Complete under concurrent
    /// writers. Throws ``RevocationLogCursorInvalid`` when the cursor is from another database.
    func readRevocationLog(
        after cursor: RevocationLogCursor?, pageSize: Int, onPage: @escaping @Sendable ([RevocationEntry]) throws -> Void
    ) async throws -> RevocationLogCursor
    /// Calls `wake` whenever another process may have appended to the log, until the task is cancelled; returns at
    /// once when the database has no way to say so (then the follower's poll is all there is).
    func watchRevocations(wake: @escaping @Sendable () -> Void) async

    /// Restores the cutoff the latest not-yet-undone cut of this target replaced, as a new log row. The cuts of one
    /// target form a stack: only its top may be undone, and only when its cause is undoable.
    /// Throws ``AuthError/nothingToUndo`` when there is none, ``AuthError/cutIsFinal(cause:)`` when the latest cut is
    /// final, ``AuthError/accountInactiveCannotBeUnrevoked`` for an inactive user.
    func unrevoke(_ request: UnrevokeRequest) async throws -> RevocationOutcome
    /// Which of these users' latest cut an operator may undo, and whether the latest revoke-all may be undone:
    /// what the console offers an "undo" for.
    func undoableCuts(userIds: [UUID]) async throws -> UndoableCuts

    /// Accounts by normalized email, optionally only those containing `search`, after the cursor's email.
    func users(matching search: String?, afterEmail: String?, limit: Int) async throws -> [User]
    /// Sets an account active again (old tokens stay revoked). Returns nil for an unknown or deleted id.
    func activate(userId: UUID, audit: AuditRecord) async throws -> User?
    /// Gives an account a role, in one transaction with a cut of every token of it (cause `role_changed`) and the
    /// `ROLE_CHANGED` audit row; writes nothing when it has that role already. Refuses demoting the last active admin
    /// (``AuthError/lastAdmin``), deciding under a lock of every active admin's row, so that two demotions at once
    /// cannot both pass; ``AuthError/userNotFound`` for an unknown or deleted account.
    func changeRole(_ change: RoleChange) async throws -> RoleChangeOutcome
    /// Deletes an account in one transaction: a cut of every token of it (cause `account_deleted`), every session
    /// ended, its personal data erased from the account, its sessions and the audit rows about it, the row kept as a
    /// tombstone (``AccountDeletion``), and the `ACCOUNT_DELETED` audit row. Refuses the last active admin
    /// (``AuthError/lastAdmin``, under the lock ``changeRole(_:)`` takes) and an unknown or deleted account.
    func deleteAccount(_ deletion: AccountDeletion) async throws -> RevocationOutcome
    /// Deletes audit rows older than the date; returns how many went.
    func deleteAuditEvents(before date: Date) async throws -> Int
    /// Deletes what can no longer matter: revocation rows of single tokens and sessions whose `until` is before
    /// `revocationsBefore` (subject and global rows are state and are never deleted), and sessions that expired
    /// before `sessionsBefore` with their spent refresh tokens. In batches, each its own transaction.
    func deleteExpiredRows(revocationsBefore: Date, sessionsBefore: Date) async throws -> ExpiredRowsDeleted

    /// Appends an audit row on its own (for events with no state change, such as a failed sign-in).
    func recordAudit(_ record: AuditRecord) async throws
    /// Audit rows matching the query, newest first.
    func auditEvents(_ query: AuditQuery) async throws -> [AuditRecord]

    /// Whether the database answers.
    func ping() async throws
    /// The live session a refresh token belongs to, with its account (nil for an unknown, spent or expired one).
    func session(refreshTokenHash: String, now: Date) async throws -> SessionGrant?

    /// Counts what an operator action would cut, or an un-revoke revive, at `now`, writing nothing (a dry run).
    /// Refuses where the action would: ``AuthError/userNotFound``, and for an un-revoke the errors of
    /// ``unrevoke(_:)``. A counted session whose latest access token was issued after `accessTokensIssuedAfter`
    /// counts in ``RevocationPreview/accessTokens`` too.
    func preview(_ action: RevocationPreview.Action, now: Date, accessTokensIssuedAfter: Date) async throws -> RevocationPreview

    /// Every log row of one target (a token, a session, a user, everyone, a key), in `seq` order, with its cause:
    /// what explains a refusal.
    func revocationHistory(of target: RevocationHistoryTarget) async throws -> [RevocationRecord]
    /// What the database knows of a refresh token by its hash, current or spent, whatever its session's state; nil
    /// when it was never issued here (or its session was deleted).
    func refreshTokenRecord(hash: String) async throws -> RefreshTokenRecord?

    /// Stores a new API token at the user's current token version and the current epoch, with its audit row.
    /// Throws ``AuthError/userNotFound`` or ``AuthError/accountInactive``.
    func createAPIToken(_ token: NewAPIToken, audit: AuditRecord) async throws -> APITokenRecord
    /// The API token with this hash (whatever its state), nil when there is none.
    func apiToken(hash: String) async throws -> APITokenRecord?
    /// One API token by id (whatever its state).
    func apiToken(id: UUID) async throws -> APITokenRecord?
    /// A user's API tokens, newest first.
    func apiTokens(userId: UUID) async throws -> [APITokenRecord]
    /// Marks an API token invalidated and appends its `token` row (its id as `jti`, until it expires) with the audit
    /// rows, in one transaction. Nil when there is no such live token (unknown, already invalidated).
    func revokeAPIToken(id: UUID, request: RevocationRequest) async throws -> RevocationOutcome?
    /// Records when tokens were last used (many at once, written in batches, not per request).
    func recordAPITokenUse(_ uses: [UUID: Date]) async throws
}

/// What to revoke, by whom and why, with the state changes that go with it in the same transaction.
public struct RevocationRequest: Sendable {
    /// The thing taken back.
    public enum Target: Sendable, Equatable {
        /// One session; `until` bounds how long its index entry is kept.
        case session(UUID, until: Date)
        /// Every token of each of these users.
        case subjects([UUID])
        /// Every token of every user.
        case global
        /// One access token, by its `jti`, until it expires.
        case token(UUID, until: Date)
    }

    public var target: Target
    /// Why: decides whether an operator may undo the cut later (``RevocationCause/isUndoable``).
    public var cause: RevocationCause
    public var actorId: UUID?
    public var reason: String?
    public var at: Date
    public var audit: [AuditRecord]
    /// For a subject revocation: a new password hash stored in the same transaction.
    public var newPasswordHash: String?
    /// For a subject revocation: set the account inactive in the same transaction.
    public var deactivate: Bool
    /// Re-key this session after the revocation (logout-others, password change): it moves to the new token
    /// version and epoch and gets this refresh token hash, so the caller keeps one device signed in.
    public var reissue: (sessionId: UUID, refreshTokenHash: String)?

    public init(
        target: Target, cause: RevocationCause, actorId: UUID?, reason: String?, at: Date, audit: [AuditRecord], newPasswordHash: String? = nil,
        deactivate: Bool = false, reissue: (sessionId: UUID, refreshTokenHash: String)? = nil
    ) {
        self.target = target
        self.cause = cause
        self.actorId = actorId
        self.reason = reason
        self.at = at
        self.audit = audit
        self.newPasswordHash = newPasswordHash
        self.deactivate = deactivate
        self.reissue = reissue
    }
}

/// The rows a revocation appended, and the re-keyed session if one was asked for.
public struct RevocationOutcome: Sendable {
    public var entries: [RevocationEntry]
    public var reissued: SessionGrant?

    public init(entries: [RevocationEntry], reissued: SessionGrant? = nil) {
        self.entries = entries
        self.reissued = reissued
    }
}

/// What to un-revoke, by whom and why.
public struct UnrevokeRequest: Sendable {
    /// One user's latest revocation, or the latest revoke-all.
    public enum Target: Sendable, Equatable {
        case subject(UUID)
        case global
    }

    public var target: Target
    public var actorId: UUID?
    public var reason: String?
    public var at: Date
    public var origin: RequestOrigin

    public init(target: Target, actorId: UUID?, reason: String?, at: Date, origin: RequestOrigin) {
        self.target = target
        self.actorId = actorId
        self.reason = reason
        self.at = at
        self.origin = origin
    }
}

/// The cuts an operator may undo now (see ``AuthStore/undoableCuts(userIds:)``).
public struct UndoableCuts: Sendable, Equatable {
    /// Users whose latest cut is an undoable one.
    public var subjects: Set<UUID>
    /// Whether the latest not-yet-undone revoke-all exists.
    public var global: Bool

    public init(subjects: Set<UUID> = [], global: Bool = false) {
        self.subjects = subjects
        self.global = global
    }
}

/// What ``AuthStore/deleteExpiredRows(revocationsBefore:sessionsBefore:)`` deleted.
public struct ExpiredRowsDeleted: Sendable, Equatable {
    public var revocations: Int
    public var sessions: Int
    public var spentRefreshTokens: Int

    public init(revocations: Int = 0, sessions: Int = 0, spentRefreshTokens: Int = 0) {
        self.revocations = revocations
        self.sessions = sessions
        self.spentRefreshTokens = spentRefreshTokens
    }
}
