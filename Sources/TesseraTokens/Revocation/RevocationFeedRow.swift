import Foundation

/// One row of the revocation log as the feed carries it (docs/GUARD.md): the same form on every instance, ids in
/// lower case as in tokens, times RFC 3339, without the row's actor or reason. The server writes it, a guard reads it.
public struct RevocationFeedRow: Codable, Sendable, Equatable {
    public var kind: String
    public var seq: Int64?
    public var revokedAt: Date?
    public var jti: String?
    public var sessionId: String?
    public var userId: String?
    public var until: Date?
    public var acceptedFromVersion: Int64?
    public var epoch: Int64?
    public var kid: String?

    /// A row that cannot be applied.
    public enum Unreadable: Error, Equatable, CustomStringConvertible {
        /// A kind this code does not know (a newer server): a follower cannot enforce it.
        case unknownKind(String)
        /// A known kind without what it needs.
        case malformed(String)

        public var description: String {
            switch self {
            case .unknownKind(let kind): "a row of kind \(kind), which this follower does not know"
            case .malformed(let kind): "a malformed \(kind) row"
            }
        }
    }

    /// The row of a log entry. Rows of a snapshot come from the index, which keeps no `seq` or time for single cuts
    /// (`seq` 0): those are left out.
    public init(_ entry: RevocationEntry) {
        self.kind = entry.kind.name
        self.seq = entry.seq > 0 ? entry.seq : nil
        self.revokedAt = entry.seq > 0 ? entry.revokedAt : nil
        switch entry.kind {
        case .token(let jti, let until):
            self.jti = jti.uuidString.lowercased()
            self.until = until
        case .session(let id, let until):
            self.sessionId = id.uuidString.lowercased()
            self.until = until
        case .subject(let userId, let acceptedFromVersion):
            self.userId = userId.uuidString.lowercased()
            self.acceptedFromVersion = acceptedFromVersion
        case .global(let epoch):
            self.epoch = epoch
        case .key(let kid):
            self.kid = kid
        }
    }

    /// The entry as an index applies it.
    /// - Throws: ``Unreadable`` for a row of an unknown kind or without what its kind needs.
    public func entry(now: Date = Date()) throws(Unreadable) -> RevocationEntry {
        let kind: RevocationKind
        switch self.kind {
        case "token":
            guard let jti = self.jti.flatMap({ UUID(parsing: $0) }), let until = self.until else { throw .malformed(self.kind) }
            kind = .token(jti: jti, until: until)
        case "session":
            guard let id = self.sessionId.flatMap({ UUID(parsing: $0) }), let until = self.until else { throw .malformed(self.kind) }
            kind = .session(id: id, until: until)
        case "subject":
            guard let userId = self.userId.flatMap({ UUID(parsing: $0) }), let version = self.acceptedFromVersion else { throw .malformed(self.kind) }
            kind = .subject(userId: userId, acceptedFromVersion: version)
        case "global":
            guard let epoch = self.epoch else { throw .malformed(self.kind) }
            kind = .global(epoch: epoch)
        case "key":
            guard let kid = self.kid, !kid.isEmpty else { throw .malformed(self.kind) }
            kind = .key(kid: kid)
        default:
            throw .unknownKind(self.kind)
        }
        return RevocationEntry(seq: self.seq ?? 0, kind: kind, revokedAt: self.revokedAt ?? now, actorId: nil, reason: nil)
    }
}
