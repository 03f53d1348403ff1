import Foundation
import SQLKit
import TesseraCore

extension SQLAuthStore {
    /// Reads only, on a reader connection: a dry run takes no write lock and never waits behind a writer. Each count
    /// is the set of sessions whose verdict the action flips, written as "live now and not after" (a cut) or "not
    /// live now and live after" (an un-revoke) in the terms of ``liveSessionCondition``, the rule refresh and the
    /// sessions list apply.
    public func preview(_ action: RevocationPreview.Action, now: Date, accessTokensIssuedAfter: Date) async throws -> RevocationPreview {
        let window = SessionWindow(now: Column.millis(now), accessTokensIssuedAfter: Column.millis(accessTokensIssuedAfter))
        return try await self.database.read { db in
            switch action {
            case .revokeUsers(let userIds):
                return try await Self.previewCut(of: userIds, window: window, on: db)
            case .deactivate(let userId):
                return try await Self.previewCut(of: [userId], window: window, on: db)
            case .changeRole(let userId, let role):
                // Decided as the change decides, without its lock: the same refusals, and nothing for the same role.
                let account = try await Self.lockedAccount(userId, lock: "", on: db)
                guard account.user.role != role else { return RevocationPreview(accounts: 0, sessions: 0, accessTokens: 0) }
                if role != .admin, account.isLastActiveAdmin { throw AuthError.lastAdmin }
                return try await Self.previewCut(of: [userId], window: window, on: db)
            case .deleteAccount(let userId):
                if try await Self.lockedAccount(userId, lock: "", on: db).isLastActiveAdmin { throw AuthError.lastAdmin }
                return try await Self.previewCut(of: [userId], window: window, on: db)
            case .revokeAll:
                // The new epoch is above every session's, so every live session falls below it.
                let accounts = try await Self.countAccounts(on: db)
                return try await Self.count(accounts: accounts, sessionsWhere: SQLQueryString(Self.liveSessionCondition), window: window, on: db)
            case .unrevoke(let target):
                let undo = try await Self.plannedUndo(of: target, lock: "", on: db)
                switch target {
                case .subject(let userId):
                    // Refused now by the user's cut-off, accepted from the restored one, and live in every other way.
                    return try await Self.count(
                        accounts: 1,
                        sessionsWhere: """
                            s.user_id = \(bind: Column.id(userId)) AND s.invalidated_at IS NULL AND u.is_active = 1 AND s.epoch >= g.accepted_epoch
                            AND s.token_version < u.accepted_from_version AND s.token_version >= \(bind: undo.restore)
                            """,
                        window: window, on: db
                    )
                case .global:
                    let accounts = try await Self.countAccounts(on: db)
                    return try await Self.count(
                        accounts: accounts,
                        sessionsWhere: """
                            s.invalidated_at IS NULL AND u.is_active = 1 AND s.token_version >= u.accepted_from_version
                            AND s.epoch < g.accepted_epoch AND s.epoch >= \(bind: undo.restore)
                            """,
                        window: window, on: db
                    )
                }
            }
        }
    }

    /// A subject cut moves each user's cut-off above its current token version, which no session of the user is
    /// above: every live session of theirs falls below it. Refuses an unknown account as the cut does.
    private static func previewCut(of userIds: [UUID], window: SessionWindow, on db: any SQLDatabase) async throws -> RevocationPreview {
        let ids = Array(Set(userIds.map(Column.id)))
        guard !ids.isEmpty else { return RevocationPreview(accounts: 0, sessions: 0, accessTokens: 0) }
        let list = SQLList(ids.map { SQLBind($0) })
        let found =
            try await db.raw("SELECT COUNT(*) AS n FROM users WHERE id IN (\(list)) AND deleted_at IS NULL").first()?.decode(column: "n", as: Int.self) ?? 0
        guard found == ids.count else { throw AuthError.userNotFound }
        return try await Self.count(
            accounts: ids.count, sessionsWhere: "s.user_id IN (\(list)) AND " + SQLQueryString(Self.liveSessionCondition), window: window, on: db
        )
    }

    /// The preview: the accounts given, the unexpired sessions meeting `condition` (over `sessions s`, `users u`,
    /// `global_state g`), and how many of those issued an access token (sign-in, refresh and re-keying all set
    /// `last_seen_at`) after the window opened.
    private static func count(
        accounts: Int, sessionsWhere condition: SQLQueryString, window: SessionWindow, on db: any SQLDatabase
    ) async throws -> RevocationPreview {
        let sql: SQLQueryString =
            """
            SELECT COUNT(*) AS sessions,
                   COALESCE(SUM(CASE WHEN s.last_seen_at > \(bind: window.accessTokensIssuedAfter) THEN 1 ELSE 0 END), 0) AS access_tokens
            FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN global_state g
            WHERE s.expires_at > \(bind: window.now) AND (
            """ + condition + ")"
        guard let row = try await db.raw(sql).first() else { return RevocationPreview(accounts: accounts, sessions: 0, accessTokens: 0) }
        let sessions = try row.decode(column: "sessions", as: Int.self)
        return RevocationPreview(accounts: accounts, sessions: sessions, accessTokens: try row.decode(column: "access_tokens", as: Int.self))
    }

    private static func countAccounts(on db: any SQLDatabase) async throws -> Int {
        // A deleted account has no token left to cut or revive: it is not counted, as it is not listed.
        try await db.raw("SELECT COUNT(*) AS n FROM users WHERE deleted_at IS NULL").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// The instants a dry run counts from, in the store's milliseconds.
    private struct SessionWindow: Sendable {
        /// Sessions expiring at or before this are not live.
        var now: Int64
        /// An access token issued at or before this has expired, leeway included.
        var accessTokensIssuedAfter: Int64
    }
}
