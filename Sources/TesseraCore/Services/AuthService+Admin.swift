import Foundation
import TesseraTokens

/// A page of accounts and the cursor of the next one.
public struct UserPage: Sendable {
    public var users: [User]
    public var nextCursor: String?
}

/// A page of audit rows, newest first, and the cursor of the next (older) one.
public struct AuditPage: Sendable {
    public var events: [AuditRecord]
    public var nextCursor: String?
}

/// What operators do: find accounts, deactivate and activate them, reset passwords, undo revocations, read the audit log.
/// Revoking users and everyone is in `AuthService+Revocation.swift`.
extension AuthService {
    /// The account with this email (any case), if any.
    public func user(email: String) async throws -> User? {
        guard let normalized = Credentials.normalize(email: email) else { return nil }
        return try await self.store.credentials(normalizedEmail: normalized)?.user
    }

    /// The emails of these accounts, in one read (ids with no account are left out).
    public func emails(of userIds: [UUID]) async throws -> [UUID: String] {
        guard !userIds.isEmpty else { return [:] }
        return Dictionary(try await self.store.users(ids: userIds).map { ($0.id, $0.email) }, uniquingKeysWith: { first, _ in first })
    }

    /// Accounts ordered by email, optionally only those whose email contains `search`; `cursor` continues a listing.
    public func listUsers(search: String?, cursor: String?, limit: Int) async throws -> UserPage {
        let limit = max(1, min(limit, 200))
        let after = try cursor.map { try Self.decodeCursor($0) }
        let fragment = try search.map { try EmailAddress.searchFragment($0) }.flatMap { $0.isEmpty ? nil : $0 }
        let users = try await self.store.users(matching: fragment, afterEmail: after, limit: limit + 1)
        let page = Array(users.prefix(limit))
        let next = users.count > limit ? page.last.map { Self.encodeCursor(Credentials.normalize(email: $0.email) ?? $0.email.lowercased()) } : nil
        return UserPage(users: page, nextCursor: next)
    }

    /// Deactivates an account: every token of it is revoked and sign-in and refresh are refused until it is activated.
    public func deactivate(userId: UUID, actorId: UUID?, reason: String?, origin: RequestOrigin) async throws -> User {
        let now = self.clock.now()
        var details: [String: String] = [:]
        if let reason { details["reason"] = reason }
        let audit = AuditRecord(at: now, event: .accountDeactivated, actorId: actorId, subjectId: userId, origin: origin, details: details)
        try await self.commit(
            RevocationRequest(
                target: .subjects([userId]), cause: .deactivated, actorId: actorId, reason: reason ?? "deactivated", at: now, audit: [audit], deactivate: true
            )
        )
        guard let user = try await self.store.user(id: userId) else { throw AuthError.userNotFound }
        return user
    }

    /// Activates an account again. Tokens revoked by the deactivation stay revoked.
    public func activate(userId: UUID, actorId: UUID?, origin: RequestOrigin) async throws -> User {
        let audit = AuditRecord(at: self.clock.now(), event: .accountActivated, actorId: actorId, subjectId: userId, origin: origin)
        guard let user = try await self.store.activate(userId: userId, audit: audit) else { throw AuthError.userNotFound }
        return user
    }

    /// Sets a new password for an account and revokes every token of it.
    public func resetPassword(userId: UUID, newPassword: String, actorId: UUID?, origin: RequestOrigin) async throws -> User {
        try Credentials.validate(password: newPassword)
        guard try await self.store.user(id: userId) != nil else { throw AuthError.userNotFound }
        let now = self.clock.now()
        let hash = try await self.hasher.hash(newPassword)
        let audit = AuditRecord(at: now, event: .passwordChanged, actorId: actorId, subjectId: userId, origin: origin, details: ["by": "admin"])
        try await self.commit(
            RevocationRequest(
                target: .subjects([userId]), cause: .passwordReset, actorId: actorId, reason: "password_reset", at: now, audit: [audit], newPasswordHash: hash
            )
        )
        guard let user = try await self.store.user(id: userId) else { throw AuthError.userNotFound }
        return user
    }

    /// Undoes the latest cut of one user, or the latest revoke-all, when an operator's bulk action made it. Cuts made
    /// for security are final and block every undo behind them; a refused undo is audited as `UNREVOKE_REFUSED`.
    @discardableResult
    public func unrevoke(_ target: UnrevokeRequest.Target, actorId: UUID?, reason: String?, origin: RequestOrigin) async throws -> RevocationEntry {
        let now = self.clock.now()
        let outcome: RevocationOutcome
        do {
            outcome = try await self.store.unrevoke(UnrevokeRequest(target: target, actorId: actorId, reason: reason, at: now, origin: origin))
        } catch let error as AuthError {
            try await self.auditRefusedUnrevoke(target, error: error, actorId: actorId, reason: reason, at: now, origin: origin)
            throw error
        }
        self.index.apply(outcome.entries, now: now)
        self.metrics.countRevocations(outcome.entries)
        guard let entry = outcome.entries.first else { throw AuthError.nothingToUndo }
        self.logger.info("un-revoked", metadata: ["kind": "\(entry.kind.name)", "seq": "\(entry.seq)"])
        return entry
    }

    private func auditRefusedUnrevoke(
        _ target: UnrevokeRequest.Target, error: AuthError, actorId: UUID?, reason: String?, at now: Date, origin: RequestOrigin
    ) async throws {
        var details: [String: String] = [:]
        switch error {
        case .nothingToUndo: details["code"] = "nothing_to_undo"
        case .cutIsFinal(let cause):
            details["code"] = "cut_is_final"
            details["cause"] = cause.rawValue
        case .accountInactiveCannotBeUnrevoked: details["code"] = "account_inactive"
        default: return
        }
        var subjectId: UUID?
        switch target {
        case .subject(let id):
            subjectId = id
            details["kind"] = "subject"
        case .global:
            details["kind"] = "global"
        }
        if let reason { details["reason"] = reason }
        try await self.store.recordAudit(
            AuditRecord(at: now, event: .unrevokeRefused, actorId: actorId, subjectId: subjectId, origin: origin, details: details)
        )
    }

    /// Which of these accounts' latest cut may be undone, and whether the latest revoke-all may: what the console
    /// offers an "undo" for.
    public func undoableCuts(userIds: [UUID]) async throws -> UndoableCuts {
        try await self.store.undoableCuts(userIds: userIds)
    }

    /// Audit rows newest first; `cursor` continues a listing, visiting each row once even while new rows arrive.
    public func auditLog(_ query: AuditQuery, cursor: String?) async throws -> AuditPage {
        var query = query
        query.limit = max(1, min(query.limit, 500))
        if let cursor {
            guard let id = Int64(try Self.decodeCursor(cursor)) else { throw AuthError.invalidArgument("cursor is not one this service issued") }
            query.beforeId = id
        }
        let limit = query.limit
        query.limit += 1
        let rows = try await self.store.auditEvents(query)
        let page = Array(rows.prefix(limit))
        let next = rows.count > limit ? page.last?.id.map { Self.encodeCursor(String($0)) } : nil
        return AuditPage(events: page, nextCursor: next)
    }

    static func encodeCursor(_ value: String) -> String { Base64URL.encode(Array(value.utf8)) }

    static func decodeCursor(_ cursor: String) throws(AuthError) -> String {
        guard cursor.utf8.count <= 1024, let data = Base64URL.decode(Substring(cursor)), let text = String(data: data, encoding: .utf8) else {
            throw .invalidArgument("cursor is not one this service issued")
        }
        return text
    }
}
