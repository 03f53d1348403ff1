import Foundation

/// What one row of the revocation log takes back.
public enum RevocationKind: Sendable, Equatable {
    /// One access token, until it would have expired anyway.
    case token(jti: UUID, until: Date)
    /// Every access token of one device session; `until` is when none of them can still be valid.
    case session(id: UUID, until: Date)
    /// Every token of one user whose `ver` is below `acceptedFromVersion`.
    case subject(userId: UUID, acceptedFromVersion: Int64)
    /// Every token whose `epoch` is below this one.
    case global(epoch: Int64)
    /// Every token signed with this key (`kid`): the emergency for a key that leaked. Final and kept for ever.
    case key(kid: String)

    /// The stable name stored in the log's `kind` column.
    public var name: String {
        switch self {
        case .token: "token"
        case .session: "session"
        case .subject: "subject"
        case .global: "global"
        case .key: "key"
        }
    }
}

/// One append-only row of the revocation log, numbered by `seq`.
public struct RevocationEntry: Sendable, Equatable {
    public var seq: Int64
    public var kind: RevocationKind
    public var revokedAt: Date
    public var actorId: UUID?
    public var reason: String?

    public init(seq: Int64, kind: RevocationKind, revokedAt: Date, actorId: UUID?, reason: String?) {
        self.seq = seq
        self.kind = kind
        self.revokedAt = revokedAt
        self.actorId = actorId
        self.reason = reason
    }
}
