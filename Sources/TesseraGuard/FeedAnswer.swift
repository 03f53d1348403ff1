import Foundation
import TesseraTokens

/// An answer of the revocation feed (snapshot or changes), as docs/GUARD.md describes it.
struct FeedAnswer: Decodable {
    var cursor: String
    var indexAgeMs: Int
    var entries: [Row]

    struct Row: Decodable {
        var kind: String
        var seq: Int64?
        var revokedAt: Date?
        var jti: String?
        var sessionId: String?
        var userId: String?
        var until: Date?
        var acceptedFromVersion: Int64?
        var epoch: Int64?
        var kid: String?

        /// The row as the index applies it.
        func entry() throws -> RevocationEntry {
            let kind: RevocationKind
            switch self.kind {
            case "token":
                guard let jti = self.jti.flatMap({ UUID(parsing: $0) }), let until = self.until else { throw GuardError.malformedRow("token") }
                kind = .token(jti: jti, until: until)
            case "session":
                guard let id = self.sessionId.flatMap({ UUID(parsing: $0) }), let until = self.until else { throw GuardError.malformedRow("session") }
                kind = .session(id: id, until: until)
            case "subject":
                guard let userId = self.userId.flatMap({ UUID(parsing: $0) }), let version = self.acceptedFromVersion else {
                    throw GuardError.malformedRow("subject")
                }
                kind = .subject(userId: userId, acceptedFromVersion: version)
            case "global":
                guard let epoch = self.epoch else { throw GuardError.malformedRow("global") }
                kind = .global(epoch: epoch)
            case "key":
                guard let kid = self.kid else { throw GuardError.malformedRow("key") }
                kind = .key(kid: kid)
            default:
                throw GuardError.unknownRowKind(self.kind)
            }
            return RevocationEntry(seq: self.seq ?? 0, kind: kind, revokedAt: self.revokedAt ?? Date(), actorId: nil, reason: nil)
        }
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
