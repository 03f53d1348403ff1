import Foundation
import TesseraTokens

/// Whose log rows to read: the target of one kind of cut.
public enum RevocationHistoryTarget: Sendable, Equatable {
    case token(jti: UUID)
    case session(id: UUID)
    case subject(userId: UUID)
    case global
    case key(kid: String)
}

/// A log row with its cause, as the log keeps it.
public struct RevocationRecord: Sendable, Equatable {
    public var entry: RevocationEntry
    public var cause: RevocationCause

    public init(entry: RevocationEntry, cause: RevocationCause) {
        self.entry = entry
        self.cause = cause
    }
}

/// A refresh token as the database knows it: the session it belongs to, and whether it is the session's current
/// one or was spent (exchanged for a successor).
public struct RefreshTokenRecord: Sendable, Equatable {
    public var sessionId: UUID
    public var userId: UUID
    public var expiresAt: Date
    public var tokenVersion: Int64
    public var epoch: Int64
    /// When the session was ended, and the reason stored with it.
    public var invalidatedAt: Date?
    public var invalidatedReason: String?
    /// When this token was exchanged for its successor; nil for the session's current token.
    public var spentAt: Date?

    public init(
        sessionId: UUID, userId: UUID, expiresAt: Date, tokenVersion: Int64, epoch: Int64, invalidatedAt: Date?, invalidatedReason: String?,
        spentAt: Date?
    ) {
        self.sessionId = sessionId
        self.userId = userId
        self.expiresAt = expiresAt
        self.tokenVersion = tokenVersion
        self.epoch = epoch
        self.invalidatedAt = invalidatedAt
        self.invalidatedReason = invalidatedReason
        self.spentAt = spentAt
    }
}

/// Why a token is accepted or refused (`tessera explain`, `POST /api/admin/explain`): what a support engineer needs
/// to answer "why was I signed out?" without reading SQL. Never carries the token.
public struct TokenExplanation: Sendable, Encodable, Equatable {
    public var accepted: Bool
    /// `access_token`, `refresh_token`, `api_token` or `unknown`.
    public var tokenType: String
    /// A stable code: `accepted`, `not_a_token`, `malformed`, `bad_signature`, `unknown_key`, `algorithm_not_allowed`,
    /// `wrong_issuer`, `wrong_audience`, `wrong_type`, `expired`, `not_yet_valid`, `revoked`, `index_stale`,
    /// `unknown_refresh_token`, `spent_refresh_token`, `unknown_api_token`.
    public var reason: String
    /// The same in a sentence, for a person.
    public var detail: String
    public var userId: UUID?
    public var sessionId: UUID?
    public var keyId: String?
    public var issuedAt: Date?
    public var expiresAt: Date?
    /// When a refresh token was exchanged for its successor.
    public var spentAt: Date?
    /// Every cut that refuses the token, the narrowest first.
    public var cuts: [ExplainedCut]

    init(accepted: Bool = false, tokenType: String, reason: String, detail: String, cuts: [ExplainedCut] = []) {
        self.accepted = accepted
        self.tokenType = tokenType
        self.reason = reason
        self.detail = detail
        self.cuts = cuts
    }
}

/// One cut that refuses a token: which, when, why, by whom, from where, and the audit row that recorded it.
public struct ExplainedCut: Sendable, Encodable, Equatable {
    /// `token`, `session`, `subject` (every token of the user), `global` (everyone's) or `key`.
    public var kind: String
    /// The log's cause: `sign_out`, `password_changed`, `admin_revoke`, `deactivated`, `sign_out_everywhere`, ….
    public var cause: String
    public var at: Date
    /// The log row.
    public var seq: Int64
    public var actorId: UUID?
    public var actorEmail: String?
    /// The reason an operator gave.
    public var reason: String?
    public var ip: String?
    public var userAgent: String?
    public var auditId: Int64?
    public var auditEvent: String?
    /// The same in a sentence.
    public var detail: String
}

/// Ids in lower case and times in RFC 3339 (UTC, milliseconds), as every answer of the API writes them; absent
/// values are left out.
extension TokenExplanation {
    enum CodingKeys: String, CodingKey {
        case accepted, tokenType, reason, detail, userId, sessionId, keyId, issuedAt, expiresAt, spentAt, cuts
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.accepted, forKey: .accepted)
        try container.encode(self.tokenType, forKey: .tokenType)
        try container.encode(self.reason, forKey: .reason)
        try container.encode(self.detail, forKey: .detail)
        try container.encodeIfPresent(self.userId?.lowercasedString, forKey: .userId)
        try container.encodeIfPresent(self.sessionId?.lowercasedString, forKey: .sessionId)
        try container.encodeIfPresent(self.keyId, forKey: .keyId)
        try container.encodeIfPresent(self.issuedAt.map(ExplanationTime.format), forKey: .issuedAt)
        try container.encodeIfPresent(self.expiresAt.map(ExplanationTime.format), forKey: .expiresAt)
        try container.encodeIfPresent(self.spentAt.map(ExplanationTime.format), forKey: .spentAt)
        try container.encode(self.cuts, forKey: .cuts)
    }
}

extension ExplainedCut {
    enum CodingKeys: String, CodingKey {
        case kind, cause, at, seq, actorId, actorEmail, reason, ip, userAgent, auditId, auditEvent, detail
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.kind, forKey: .kind)
        try container.encode(self.cause, forKey: .cause)
        try container.encode(ExplanationTime.format(self.at), forKey: .at)
        try container.encode(self.seq, forKey: .seq)
        try container.encodeIfPresent(self.actorId?.lowercasedString, forKey: .actorId)
        try container.encodeIfPresent(self.actorEmail, forKey: .actorEmail)
        try container.encodeIfPresent(self.reason, forKey: .reason)
        try container.encodeIfPresent(self.ip, forKey: .ip)
        try container.encodeIfPresent(self.userAgent, forKey: .userAgent)
        try container.encodeIfPresent(self.auditId, forKey: .auditId)
        try container.encodeIfPresent(self.auditEvent, forKey: .auditEvent)
        try container.encode(self.detail, forKey: .detail)
    }
}

enum ExplanationTime {
    static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }
}
