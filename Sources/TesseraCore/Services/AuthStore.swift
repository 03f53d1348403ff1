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
    /// Spends a refresh token and stores its successor; a spent token presented again revokes its session.
    func rotateRefreshToken(_ rotation: RefreshRotation) async throws -> RefreshOutcome
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
    /// Sets an account active again (old tokens stay revoked). Returns nil for an unknown id.
    func activate(userId: UUID, audit: AuditRecord) async throws -> User?
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
}

/// One refresh: the presented token's hash and its successor's.
public struct RefreshRotation: Sendable {
    public var presentedHash: String
    public var successorHash: String
    public var now: Date
    public var origin: RequestOrigin
    /// Where a reuse revocation's session entry may be dropped from the index.
    public var reuseRevocationUntil: Date

    public init(presentedHash: String, successorHash: String, now: Date, origin: RequestOrigin, reuseRevocationUntil: Date) {
        self.presentedHash = presentedHash
        self.successorHash = successorHash
        self.now = now
        self.origin = origin
        self.reuseRevocationUntil = reuseRevocationUntil
    }
}

/// What came of presenting a refresh token.
public enum RefreshOutcome: Sendable {
    /// The token was live; its successor is stored.
    case rotated(SessionGrant)
    /// The token had been spent before: theft. Its session is revoked by these rows.
    case reused(RevocationOutcome)
    /// Unknown token, or its session is no longer live.
    case invalid
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
