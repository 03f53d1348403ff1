import Foundation
import TesseraTokens

/// An answer of the revocation feed (snapshot or changes), as docs/GUARD.md describes it.
struct FeedAnswer: Decodable {
    var cursor: String
    var indexAgeMs: Int
    /// How long the instance held a long poll before answering it (changes only).
    var heldMs: Int?
    var entries: [RevocationFeedRow]

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
