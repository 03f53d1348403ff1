import Foundation
import Hummingbird
import ServiceLifecycle
import TesseraCore
import TesseraStore

/// The revocation feed (docs/GUARD.md): what a guarded service follows to enforce Tessera's revocations locally.
/// `GET /api/revocations/snapshot` gives every live cut and the cursor to continue from; `GET
/// /api/revocations/changes?cursor=&wait=` the rows past a cursor, long-polled. Both answer a registered client with
/// the feed permission (HTTP Basic), from memory: the follower's reads and the index, never the database.
struct RevocationFeedController {
    typealias Context = TesseraRequestContext
    let index: RevocationIndex
    let feed: RevocationFeed
    let clients: ClientRegistry

    /// The longest long poll: beyond this, proxies and load balancers start cutting connections.
    static let longestWait: Duration = .seconds(30)

    func addRoutes(to router: Router<Context>) {
        let group = router.group("api/revocations")
        group.get("snapshot", use: self.snapshot)
        group.get("changes", use: self.changes)
    }

    @Sendable func snapshot(request: Request, context: Context) async throws -> Response {
        try await self.authenticate(request)
        // The cursor first, then the index: the index holds at least every row before the cursor (rows after it are
        // sent again by the next change, harmlessly).
        guard let (cursor, readAt) = self.feed.latestRead else { throw AuthError.revocationIndexStale }
        return try self.answer(cursor: cursor, readAt: readAt, entries: self.index.liveEntries(), heldSince: nil)
    }

    @Sendable func changes(request: Request, context: Context) async throws -> Response {
        let arrived = ContinuousClock.now
        try await self.authenticate(request)
        guard let text = request.uri.queryParameters["cursor"].map(String.init), !text.isEmpty else {
            throw ProblemError(.badRequest, code: "invalid_cursor", detail: "Give the cursor of a snapshot or of the previous answer.")
        }
        let wait = try Self.wait(request.uri.queryParameters["wait"].map(String.init))
        guard let cursor = FeedCursor.decode(text) else { throw Self.gone }
        // A long poll ends at graceful shutdown (answered with what is known then), so that it never holds it up.
        let feed = self.feed
        switch await cancelWhenGracefulShutdown({ await feed.changes(after: cursor, wait: wait) }) {
        case .gone:
            throw Self.gone
        case .unavailable:
            throw AuthError.revocationIndexStale
        case .changes(let changes):
            return try self.answer(cursor: changes.cursor, readAt: changes.readAt, entries: changes.entries, heldSince: arrived)
        }
    }

    static let gone = ProblemError(
        .gone, code: "cursor_gone",
        detail: "This cursor is unknown here (from another database, older than the rows kept, or malformed): take a snapshot and continue from its cursor."
    )

    /// How old an answer reaching to the read begun at `readAt` is, taken after it was encoded (a large snapshot takes
    /// a while): a follower can never be fresher than its source. A stale index answers 503.
    private func indexAgeMs(readAt: ContinuousClock.Instant) throws -> Int {
        let age = readAt.duration(to: .now)
        guard self.index.isCurrent(), age <= self.index.stalenessBound else { throw AuthError.revocationIndexStale }
        return Self.milliseconds(age)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    private func authenticate(_ request: Request) async throws {
        let challenge: HTTPFields = [.wwwAuthenticate: "Basic realm=\"tessera\""]
        let unauthorized = ProblemError(.unauthorized, code: "invalid_client", detail: "Authenticate as a registered client (HTTP Basic).", headers: challenge)
        guard let (id, secret) = request.headers[.authorization].flatMap(BasicCredentials.parse) else { throw unauthorized }
        guard let client = try await self.clients.authenticate(id: id, secret: secret) else { throw unauthorized }
        guard client.mayFeed else {
            throw ProblemError(.forbidden, code: "forbidden", detail: "This client may not follow the revocation feed (tessera clients add NAME --feed).")
        }
    }

    /// `wait`: `500ms`, `2s` or a number of seconds, at most 30 s; none is 0 (answer at once).
    static func wait(_ text: String?) throws -> Duration {
        guard let text, !text.isEmpty else { return .zero }
        let invalid = ProblemError(.badRequest, code: "invalid_wait", detail: "wait is a duration such as 500ms or 2s, at most 30s.")
        let number = text.hasSuffix("ms") ? text.dropLast(2) : text.hasSuffix("s") ? text.dropLast() : Substring(text)
        // Digits and at most one point: no exponents, hexadecimal, signs or infinities.
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), number.filter({ $0 == "." }).count <= 1,
            let value = Double(number)
        else { throw invalid }
        let milliseconds = text.hasSuffix("ms") ? value : value * 1000
        guard milliseconds.isFinite, milliseconds >= 0, milliseconds <= Double(Self.longestWait.components.seconds * 1000) else { throw invalid }
        return .milliseconds(Int64(milliseconds))
    }

    /// `{"cursor", "entries", "indexAgeMs"}` (and for a long poll `heldMs`, how long it was held here, so that a follower
    /// counts from when it was answered rather than from when the answer arrived), times measured once the rows are
    /// encoded.
    private func answer(cursor: RevocationLogCursor, readAt: ContinuousClock.Instant, entries: [RevocationEntry], heldSince: ContinuousClock.Instant?) throws -> Response {
        var data = Data(#"{"cursor":"#.utf8)
        data.append(try Self.encoder.encode(FeedCursor.encode(cursor)))
        data.append(Data(#","entries":"#.utf8))
        data.append(try Self.encoder.encode(entries.map(RevocationFeedRow.init)))
        if let heldSince { data.append(Data(#","heldMs":\#(Self.milliseconds(heldSince.duration(to: .now)))"#.utf8)) }
        data.append(Data(#","indexAgeMs":\#(try self.indexAgeMs(readAt: readAt))}"#.utf8))
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
}

/// A feed cursor as followers see it: opaque (base64url of the database's name for the position).
enum FeedCursor {
    /// A PostgreSQL cursor lists the transactions running anywhere in the cluster; 32 KiB holds a few thousand.
    static let longestCursor = 32_768

    static func encode(_ cursor: RevocationLogCursor) -> String {
        Base64URL.encode(Array("1~\(cursor.cluster)~\(cursor.position)".utf8))
    }

    static func decode(_ text: String) -> RevocationLogCursor? {
        guard text.utf8.count <= Self.longestCursor, let bytes = Base64URL.decode(Substring(text)), let decoded = String(data: bytes, encoding: .utf8) else { return nil }
        let parts = decoded.split(separator: "~", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "1", !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        return RevocationLogCursor(cluster: String(parts[1]), position: String(parts[2]))
    }
}
