import Foundation
import Testing
import TesseraTokens

/// The feed's row form, written by the server and read by every guard: what one writes the other must read back as
/// the same cut, for rows of every kind, and a row it cannot enforce must never be read as something weaker.
@Suite struct RevocationFeedRowTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    static func randomEntry(using generator: inout some RandomNumberGenerator) -> RevocationEntry {
        let second = Date(timeIntervalSince1970: TimeInterval(Int64.random(in: 1_700_000_000...2_000_000_000, using: &generator)))
        let kinds: [RevocationKind] = [
            .token(jti: UUID(), until: second), .session(id: UUID(), until: second),
            .subject(userId: UUID(), acceptedFromVersion: Int64.random(in: 0...Int64.max, using: &generator)),
            .global(epoch: Int64.random(in: 1...Int64.max, using: &generator)), .key(kid: "ed_" + UUID().uuidString),
        ]
        return RevocationEntry(
            seq: Int64.random(in: 1...Int64.max, using: &generator), kind: kinds.randomElement(using: &generator)!, revokedAt: second, actorId: UUID(),
            reason: "stolen phone"
        )
    }

    @Test func everyKindOfRowReadsBackAsTheSameCut() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let entry = Self.randomEntry(using: &generator)
            let json = try Self.encoder.encode(RevocationFeedRow(entry))
            #expect(!String(decoding: json, as: UTF8.self).contains("stolen phone"), "a row carried its reason")
            let read = try Self.decoder.decode(RevocationFeedRow.self, from: json).entry()
            #expect(read.kind == entry.kind && read.seq == entry.seq && read.revokedAt == entry.revokedAt)
        }
    }

    /// A row a follower cannot read must stop it, never be skipped as if it cut nothing.
    @Test func unknownKindsAndIncompleteRowsAreUnreadable() throws {
        let rows = [
            #"{"kind":"device","deviceId":"x"}"#, #"{"kind":"token","until":"2030-01-01T00:00:00Z"}"#, #"{"kind":"session","sessionId":"not-a-uuid","until":"2030-01-01T00:00:00Z"}"#,
            #"{"kind":"subject","userId":"7c4f1d2e-1b55-4a7e-9a7c-000000000001"}"#, #"{"kind":"global"}"#, #"{"kind":"key","kid":""}"#,
        ]
        for text in rows {
            let row = try Self.decoder.decode(RevocationFeedRow.self, from: Data(text.utf8))
            #expect(throws: RevocationFeedRow.Unreadable.self, "\(text)") { try row.entry() }
        }
        let unknown = try Self.decoder.decode(RevocationFeedRow.self, from: Data(#"{"kind":"device"}"#.utf8))
        #expect(throws: RevocationFeedRow.Unreadable.unknownKind("device")) { try unknown.entry() }
    }
}
