import Foundation
import TesseraTokens

/// The audit event names of the API contract.
public enum AuditEventName: String, Sendable, Codable, CaseIterable {
    case userRegistered = "USER_REGISTERED"
    case authLogin = "AUTH_LOGIN"
    case authLoginFailed = "AUTH_LOGIN_FAILED"
    case authRefresh = "AUTH_REFRESH"
    case authLogout = "AUTH_LOGOUT"
    case tokenReuseDetected = "TOKEN_REUSE_DETECTED"
    case passwordChanged = "PASSWORD_CHANGED"
    case accountDeactivated = "ACCOUNT_DEACTIVATED"
    case accountActivated = "ACCOUNT_ACTIVATED"
    case revokeUsers = "REVOKE_USERS"
    case revokeAll = "REVOKE_ALL"
    case unrevoke = "UNREVOKE"
    /// An un-revoke that was refused (nothing to undo, or the latest cut is final).
    case unrevokeRefused = "UNREVOKE_REFUSED"
    /// One access token revoked by its `jti` (RFC 7009).
    case tokenRevoked = "TOKEN_REVOKED"
    /// A signing key was created (at first start, by a rotation, or in place of a revoked key).
    case keyCreated = "KEY_CREATED"
    /// A signing key was taken out of service (it verifies until its tokens expire).
    case keyRetired = "KEY_RETIRED"
    /// A signing key was revoked: every token it signed is refused.
    case keyRevoked = "KEY_REVOKED"
    /// A client (introspection, revocation, feed) was registered.
    case clientAdded = "CLIENT_ADDED"
    /// A client was removed.
    case clientRemoved = "CLIENT_REMOVED"
    /// A personal API token was created (`details.tokenId`, `details.name`).
    case apiTokenCreated = "API_TOKEN_CREATED"
    /// A personal API token was revoked by its holder, an operator or the CLI (`details.tokenId`).
    case apiTokenRevoked = "API_TOKEN_REVOKED"
    /// An account's role changed (`details.from`, `details.to`); every token of it was revoked.
    case roleChanged = "ROLE_CHANGED"
    /// An account was deleted: its tokens revoked, its personal data erased, its row kept as a tombstone.
    case accountDeleted = "ACCOUNT_DELETED"
}

/// One audit row, written in the same transaction as the change it records.
public struct AuditRecord: Sendable, Equatable {
    public var id: Int64?
    public var at: Date
    public var event: AuditEventName
    public var actorId: UUID?
    /// The one account the event acted on; nil when it acted on none or on several.
    public var subjectId: UUID?
    /// Every account an event with several subjects acted on (a revoke of many users), empty otherwise: reading
    /// the log by user finds the row from each of them.
    public var subjectIds: [UUID]
    public var sessionId: UUID?
    public var terminalId: String?
    public var ip: String?
    public var userAgent: String?
    public var details: [String: String]

    public init(
        id: Int64? = nil, at: Date, event: AuditEventName, actorId: UUID? = nil, subjectId: UUID? = nil, subjectIds: [UUID] = [],
        sessionId: UUID? = nil, origin: RequestOrigin = RequestOrigin(), details: [String: String] = [:]
    ) {
        self.id = id
        self.at = at
        self.event = event
        self.actorId = actorId
        self.subjectId = subjectId
        self.subjectIds = subjectIds
        self.sessionId = sessionId
        self.terminalId = origin.terminalId
        self.ip = origin.ip
        self.userAgent = origin.userAgent
        self.details = details
    }
}

/// Filters for reading the audit log, newest first.
public struct AuditQuery: Sendable {
    /// Only rows where this account is the actor or one of the subjects.
    public var userId: UUID?
    public var event: AuditEventName?
    public var since: Date?
    public var until: Date?
    /// Only rows with an id below this one (the paging cursor).
    public var beforeId: Int64?
    public var limit: Int

    public init(userId: UUID? = nil, event: AuditEventName? = nil, since: Date? = nil, until: Date? = nil, beforeId: Int64? = nil, limit: Int = 50) {
        self.userId = userId
        self.event = event
        self.since = since
        self.until = until
        self.beforeId = beforeId
        self.limit = limit
    }
}
