import Foundation
import SQLKit
import TesseraCore

/// Role changes and account deletion. Both lock the account together with every active admin before deciding
/// (``lockedAccount(_:lock:on:)``), so that the "last active admin" rule holds under concurrent writers.
extension SQLAuthStore {
    public func changeRole(_ change: RoleChange) async throws -> RoleChangeOutcome {
        let lock = self.database.rowLock
        let outcome = try await self.database.transaction { db -> RoleChangeOutcome in
            let account = try await Self.lockedAccount(change.userId, lock: lock, on: db)
            let previous = account.user.role
            guard previous != change.role else { return RoleChangeOutcome(user: account.user, previousRole: previous, entries: []) }
            if change.role != .admin, account.isLastActiveAdmin { throw AuthError.lastAdmin }
            let entry = try await Self.revokeSubject(
                change.userId,
                request: RevocationRequest(
                    target: .subjects([change.userId]), cause: .roleChanged, actorId: change.actorId, reason: "role_changed", at: change.at, audit: []
                ),
                lock: lock, on: db
            )
            let id = Column.id(change.userId)
            try await db.raw("UPDATE users SET role = \(bind: change.role.rawValue) WHERE id = \(bind: id)").run()
            try await Self.insertAudit(
                AuditRecord(
                    at: change.at, event: .roleChanged, actorId: change.actorId, subjectId: change.userId, origin: change.origin,
                    details: ["from": previous.rawValue, "to": change.role.rawValue]
                ),
                on: db
            )
            guard let user = try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE id = \(bind: id)").first()?.user() else {
                throw AuthError.userNotFound
            }
            return RoleChangeOutcome(user: user, previousRole: previous, entries: [entry])
        }
        if outcome.changed { self.database.announceRevocations() }
        return outcome
    }

    /// The cut comes first (it refuses an account deleted already), then the erasure, then the `ACCOUNT_DELETED` row,
    /// which is written after the audit rows are made pseudonymous and so keeps the origin only when another account
    /// (an admin) or the command line deleted this one. What is erased, and why, is docs/OPERATIONS.md's "Deleting
    /// an account".
    public func deleteAccount(_ deletion: AccountDeletion) async throws -> RevocationOutcome {
        let lock = self.database.rowLock
        let outcome = try await self.database.transaction { db -> RevocationOutcome in
            let account = try await Self.lockedAccount(deletion.userId, lock: lock, on: db)
            if account.isLastActiveAdmin { throw AuthError.lastAdmin }
            let entry = try await Self.revokeSubject(
                deletion.userId,
                request: RevocationRequest(
                    target: .subjects([deletion.userId]), cause: .accountDeleted, actorId: deletion.actorId, reason: "account_deleted",
                    at: deletion.at, audit: [], deactivate: true
                ),
                lock: lock, on: db
            )
            let id = Column.id(deletion.userId)
            let now = Column.millis(deletion.at)
            let placeholder = AccountDeletion.placeholderEmail(for: deletion.userId)
            try await db.raw(
                """
                UPDATE users SET email = \(bind: placeholder), email_normalized = \(bind: placeholder),
                       password_hash = \(bind: AccountDeletion.unusablePasswordHash), deleted_at = \(bind: now)
                WHERE id = \(bind: id)
                """
            ).run()
            // Every session ends (those ended before keep their time and reason) and forgets where it was used from.
            try await db.raw(
                """
                UPDATE sessions SET invalidated_reason = CASE WHEN invalidated_at IS NULL THEN 'account_deleted' ELSE invalidated_reason END,
                       invalidated_at = COALESCE(invalidated_at, \(bind: now)), ip = NULL, user_agent = NULL, device_name = NULL, terminal_id = NULL
                WHERE user_id = \(bind: id)
                """
            ).run()
            // API tokens are refused by the cut already; their rows stay, ended, without the name the person gave them
            // or where they were made from.
            try await db.raw(
                """
                UPDATE api_tokens SET invalidated_at = COALESCE(invalidated_at, \(bind: now)), name = '', ip = NULL, user_agent = NULL
                WHERE user_id = \(bind: id)
                """
            ).run()
            try await db.raw("DELETE FROM identity_conflicts WHERE user_id = \(bind: id)").run()
            let addresses = AccountAddresses(userId: deletion.userId, preserved: account.user.email, normalized: account.normalizedEmail)
            try await Self.pseudonymizeAudit(of: addresses, on: db)
            try await Self.scrubRevocationReasons(of: addresses, on: db)
            let bySelf = deletion.actorId == deletion.userId
            try await Self.insertAudit(
                AuditRecord(
                    at: deletion.at, event: .accountDeleted, actorId: deletion.actorId, subjectId: deletion.userId,
                    origin: bySelf ? RequestOrigin() : deletion.origin, details: ["by": bySelf ? "self" : "admin"]
                ),
                on: db
            )
            return RevocationOutcome(entries: [entry])
        }
        self.database.announceRevocations()
        return outcome
    }

    /// An account locked for a role change or deletion, and whether it is the only active admin.
    struct LockedAccount {
        var user: User
        var normalizedEmail: String
        var isLastActiveAdmin: Bool
    }

    /// Reads the account and every active admin in one statement, locking their rows in id order (`lock`, PostgreSQL's
    /// `FOR UPDATE`; empty on SQLite, whose write transactions take turns, and for a dry run), the order every
    /// revocation of several users locks in, so that no two writers deadlock. A second demotion waiting on these rows
    /// reads them again once the first commits (PostgreSQL re-checks a locked row that changed) and no longer counts
    /// the admin the first one demoted: of two demotions of the last two admins, one is refused.
    /// ``AuthError/userNotFound`` for an unknown or deleted account.
    static func lockedAccount(_ userId: UUID, lock: String, on db: any SQLDatabase) async throws -> LockedAccount {
        let id = Column.id(userId)
        let rows = try await db.raw(
            """
            SELECT \(unsafeRaw: Self.userColumns), email_normalized, deleted_at FROM users
            WHERE id = \(bind: id) OR (role = 'admin' AND is_active = 1 AND deleted_at IS NULL)
            ORDER BY id\(unsafeRaw: lock)
            """
        ).all()
        var target: LockedAccount?
        var activeAdmins = 0
        for row in rows {
            let user = try row.user()
            let deleted = try row.decode(column: "deleted_at", as: Int64?.self) != nil
            if user.role == .admin, user.isActive, !deleted { activeAdmins += 1 }
            if user.id == userId, !deleted {
                let normalizedEmail = try row.decode(column: "email_normalized", as: String.self)
                target = LockedAccount(user: user, normalizedEmail: normalizedEmail, isLastActiveAdmin: false)
            }
        }
        guard var account = target else { throw AuthError.userNotFound }
        account.isLastActiveAdmin = account.user.role == .admin && account.user.isActive && activeAdmins == 1
        return account
    }

    /// The forms of a deleted account's address, and what they become in the rows that keep a mention of it.
    struct AccountAddresses {
        var userId: UUID
        var preserved: String
        var normalized: String

        var placeholder: String { AccountDeletion.placeholderEmail(for: self.userId) }

        /// `text` with every occurrence of the address (any case) replaced by the placeholder.
        func scrubbed(_ text: String) -> String {
            var result = text
            for address in Set([self.preserved, self.normalized]) where !address.isEmpty {
                result = result.replacingOccurrences(of: address, with: self.placeholder, options: .caseInsensitive)
            }
            return result
        }
    }

    /// Audit rows stay, with their ids, events and times; what names or locates the person goes:
    /// - the address: `details.email` of rows about the account (failed sign-ins), of failed sign-ins that named the
    ///   address before it had an account, and any mention of it in other details (an operator's reason);
    /// - the names they gave: `details.deviceName` of their sign-ins, `details.name` of their API tokens;
    /// - the origin (address, user agent, terminal id) of every request that may have been theirs: rows they are the
    ///   actor of, failed sign-ins and refresh-token reuse on their account, failed sign-ins naming their address.
    ///   Rows another account (an admin), the command line or a registered client wrote about them keep the origin,
    ///   which is that party's.
    static func pseudonymizeAudit(of addresses: AccountAddresses, on db: any SQLDatabase) async throws {
        let id = Column.id(addresses.userId)
        try await db.raw(
            """
            UPDATE audit_events SET ip = NULL, user_agent = NULL, terminal_id = NULL
            WHERE (actor_id = \(bind: id)
                   OR (subject_id = \(bind: id) AND actor_id IS NULL AND event IN ('AUTH_LOGIN_FAILED', 'TOKEN_REUSE_DETECTED')))
              AND (ip IS NOT NULL OR user_agent IS NOT NULL OR terminal_id IS NOT NULL)
            """
        ).run()
        let about = try await db.raw(
            """
            SELECT id, event, actor_id, subject_id, details FROM audit_events
            WHERE actor_id = \(bind: id) OR subject_id = \(bind: id) OR id IN (SELECT audit_id FROM audit_subjects WHERE subject_id = \(bind: id))
            """
        ).all()
        // Failed sign-ins that named the address while no account had it (so no subject): found by the address as
        // their details store it, then checked exactly once decoded.
        let encoded = String(decoding: try JSONEncoder().encode(addresses.normalized), as: UTF8.self).dropFirst().dropLast()
        let pattern = "%" + Self.likeEscaped(String(encoded)) + "%"
        let naming = try await db.raw(
            """
            SELECT id, event, actor_id, subject_id, details FROM audit_events
            WHERE event = 'AUTH_LOGIN_FAILED' AND subject_id IS NULL AND details LIKE \(bind: pattern) ESCAPE '\\'
            """
        ).all()
        for (row, namesAddressOnly) in about.map({ ($0, false) }) + naming.map({ ($0, true) }) {
            let text = try row.decode(column: "details", as: String.self)
            guard var details = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)) else { continue }
            let original = details
            let isSubject = try row.decode(column: "subject_id", as: String?.self) == id
            let isActor = try row.decode(column: "actor_id", as: String?.self) == id
            if namesAddressOnly {
                guard details["email"]?.lowercased() == addresses.normalized.lowercased() else { continue }
            }
            if isSubject || namesAddressOnly { details["email"] = nil }
            if isActor || isSubject { details["deviceName"] = nil }
            if isSubject, Self.namesAnAPIToken.contains(try row.decode(column: "event", as: String.self)) { details["name"] = nil }
            details = details.mapValues(addresses.scrubbed)
            let auditId = try row.decode(column: "id", as: Int64.self)
            if namesAddressOnly {
                try await db.raw("UPDATE audit_events SET ip = NULL, user_agent = NULL, terminal_id = NULL WHERE id = \(bind: auditId)").run()
            }
            guard details != original else { continue }
            try await db.raw("UPDATE audit_events SET details = \(bind: try Self.encodedDetails(details)) WHERE id = \(bind: auditId)").run()
        }
    }

    /// Audit events whose `details.name` is the name the account's owner gave an API token.
    static let namesAnAPIToken: Set<String> = [AuditEventName.apiTokenCreated.rawValue, AuditEventName.apiTokenRevoked.rawValue]

    /// The log keeps every row (the index and the undo stacks are made of them); only a mention of the address in a
    /// reason an operator typed for a cut of this account is replaced.
    static func scrubRevocationReasons(of addresses: AccountAddresses, on db: any SQLDatabase) async throws {
        let rows = try await db.raw(
            "SELECT seq, reason FROM revocations WHERE user_id = \(bind: Column.id(addresses.userId)) AND reason IS NOT NULL"
        ).all()
        for row in rows {
            let reason = try row.decode(column: "reason", as: String.self)
            let scrubbed = addresses.scrubbed(reason)
            guard scrubbed != reason else { continue }
            let seq = try row.decode(column: "seq", as: Int64.self)
            try await db.raw("UPDATE revocations SET reason = \(bind: scrubbed) WHERE seq = \(bind: seq)").run()
        }
    }

    /// `text` for a `LIKE … ESCAPE '\'` pattern: its own `\`, `%` and `_` match only themselves.
    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }
}
