import Foundation
import HTTPTypes
import Hummingbird
import TesseraCore

/// ISO 8601 UTC with seconds, as the API shows every time.
func iso8601(_ date: Date) -> String {
    date.formatted(.iso8601)
}

/// `{"id", "email", "role", "isActive", "createdAt"}`; also what `tessera … --json` prints.
public struct UserResponse: ResponseEncodable, Sendable {
    public var id: String
    public var email: String
    public var role: String
    public var isActive: Bool
    public var createdAt: String

    public init(_ user: User) {
        self.id = user.id.lowercasedString
        self.email = user.email
        self.role = user.role.rawValue
        self.isActive = user.isActive
        self.createdAt = iso8601(user.createdAt)
    }
}

/// `{"user"}`, the answer to registration.
struct RegisteredResponse: ResponseEncodable {
    var user: UserResponse
}

/// The token pair of the API contract (`TokenPair` in openapi.yaml).
struct TokenPairResponse: ResponseEncodable {
    var accessToken: String
    var refreshToken: String
    var tokenType: String
    var expiresIn: Int
    var sessionId: String
    var user: UserResponse

    init(_ pair: TokenPair) {
        self.accessToken = pair.accessToken
        self.refreshToken = pair.refreshToken
        self.tokenType = pair.tokenType
        self.expiresIn = pair.expiresIn
        self.sessionId = pair.sessionId.lowercasedString
        self.user = UserResponse(pair.user)
    }
}

/// One live session in the sessions list; also what `tessera sessions --json` prints.
public struct SessionResponse: Encodable, Sendable {
    public var id: String
    public var createdAt: String
    public var lastSeenAt: String
    public var expiresAt: String
    public var ip: String?
    public var userAgent: String?
    public var deviceName: String?
    public var current: Bool

    public init(_ session: Session, current: Bool) {
        self.id = session.id.lowercasedString
        self.createdAt = iso8601(session.createdAt)
        self.lastSeenAt = iso8601(session.lastSeenAt)
        self.expiresAt = iso8601(session.expiresAt)
        self.ip = session.ip
        self.userAgent = session.userAgent
        self.deviceName = session.deviceName
        self.current = current
    }
}

/// `{"sessions": [...]}`.
struct SessionListResponse: ResponseEncodable {
    var sessions: [SessionResponse]
}

/// `{"ok":true,"userId":"…"}`, the answer of the probe other services call most, written as bytes.
struct PingResponse: ResponseGenerator {
    var userId: UUID

    func response(from request: Request, context: some RequestContext) -> Response {
        let prefix: StaticString = #"{"ok":true,"userId":""#
        var body = ByteBufferAllocator().buffer(capacity: prefix.utf8CodeUnitCount + 38)
        body.writeStaticString(prefix)
        body.writeWithUnsafeMutableBytes(minimumWritableBytes: 36) { room in
            self.userId.writeLowercased(into: room.bindMemory(to: UInt8.self))
        }
        body.writeStaticString(#""}"#)
        return SmallJSON.response(body)
    }
}

/// `{"status":"ok"}` of `/health`, the same bytes every time.
struct HealthResponse: ResponseGenerator {
    private static let body = ByteBuffer(string: #"{"status":"ok"}"#)

    func response(from request: Request, context: some RequestContext) -> Response {
        SmallJSON.response(Self.body)
    }
}

/// The two answers above are written without `JSONEncoder`, which was ~8 % of a request to either route in a profile
/// of the server under wrk; their fields can hold nothing that JSON would need to escape (a UUID, constants).
enum SmallJSON {
    /// A 200 with the headers `JSONEncoder`'s responses carry.
    static func response(_ body: ByteBuffer) -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(4)
        headers.append(HTTPField(name: .contentType, value: "application/json; charset=utf-8"))
        headers.append(HTTPField(name: .contentLength, value: String(body.readableBytes)))
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
    }
}

/// `/health` and `/ready`.
struct StatusResponse: ResponseEncodable {
    var status: String
    var checks: [String: String]?
}
