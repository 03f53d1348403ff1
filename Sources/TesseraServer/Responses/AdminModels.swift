import Foundation
import Hummingbird
import TesseraCore

/// `{"user"}`.
struct UserEnvelope: ResponseEncodable {
    var user: UserResponse
}

/// `{"users": [...], "nextCursor"}`, the cursor `null` on the last page.
struct UserListResponse: ResponseEncodable {
    var users: [UserResponse]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case users, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.users, forKey: .users)
        try container.encode(self.nextCursor, forKey: .nextCursor)
    }
}

/// `{"revoked": N}`.
struct RevokedResponse: ResponseEncodable {
    var revoked: Int
}

/// `{"epoch": N}`.
struct EpochResponse: ResponseEncodable {
    var epoch: Int64
}

/// What an un-revoke restored.
struct UnrevokedResponse: ResponseEncodable {
    var seq: Int64
    var kind: String
    var userId: String?
    var acceptedFromVersion: Int64?
    var epoch: Int64?
    var keyId: String?

    init(_ entry: RevocationEntry) {
        self.seq = entry.seq
        self.kind = entry.kind.name
        switch entry.kind {
        case .subject(let userId, let version):
            self.userId = userId.lowercasedString
            self.acceptedFromVersion = version
        case .global(let epoch):
            self.epoch = epoch
        case .key(let kid):
            self.keyId = kid
        case .token, .session:
            break
        }
    }
}

/// One audit row; also what `tessera audit --json` prints.
public struct AuditEventResponse: Encodable, Sendable {
    public var id: String
    public var at: String
    public var event: String
    public var actorId: String?
    public var subjectId: String?
    public var sessionId: String?
    public var terminalId: String?
    public var ip: String?
    public var userAgent: String?
    public var details: [String: String]

    enum CodingKeys: String, CodingKey { case id, at, event, actorId, subjectId, sessionId, terminalId, ip, userAgent, details }

    public init(_ record: AuditRecord) {
        self.id = record.id.map { String($0) } ?? ""
        self.at = iso8601(record.at)
        self.event = record.event.rawValue
        self.actorId = record.actorId?.lowercasedString
        self.subjectId = record.subjectId?.lowercasedString
        self.sessionId = record.sessionId?.lowercasedString
        self.terminalId = record.terminalId
        self.ip = record.ip
        self.userAgent = record.userAgent
        self.details = record.details
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.at, forKey: .at)
        try container.encode(self.event, forKey: .event)
        for (key, value) in [
            (CodingKeys.actorId, self.actorId), (.subjectId, self.subjectId), (.sessionId, self.sessionId), (.terminalId, self.terminalId),
            (.ip, self.ip), (.userAgent, self.userAgent),
        ] {
            try container.encode(value, forKey: key)
        }
        try container.encode(self.details, forKey: .details)
    }
}

/// `{"events": [...], "nextCursor"}`, the cursor `null` on the last page.
struct AuditListResponse: ResponseEncodable {
    var events: [AuditEventResponse]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case events, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.events, forKey: .events)
        try container.encode(self.nextCursor, forKey: .nextCursor)
    }
}
