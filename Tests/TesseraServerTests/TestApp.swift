import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import TesseraCore
import TesseraServer
import TesseraStore

/// Builds the real application on a SQLite file in a fresh temporary folder and runs a test against its router.
enum TestApp {
    static let secret = "route-tests-secret-0123456789-abcdefghij"

    /// - Parameter admins: accounts created with the admin role (password `admin password`) before the app starts,
    ///   as `tessera users add --admin` does.
    /// - Parameter seed: writes what the test needs into the database before the app starts (clients, for example).
    /// - Parameter live: a real HTTP server on a loopback port (`client.port`), for clients that make their own
    ///   connections, such as a guard.
    static func run(
        logger: Logger? = nil, admins: [String] = [], live: Bool = false, _ configure: (inout Configuration) -> Void = { _ in },
        seed: (TesseraServices) async throws -> Void = { _ in }, _ test: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = Configuration(
            database: .sqlite(path: directory.appendingPathComponent("tessera.sqlite").path), jwtSecret: Self.secret, bcryptCost: 4,
            logLevel: .warning
        )
        configure(&configuration)
        var quiet = Logger(label: "tessera.test")
        quiet.logLevel = .critical
        let services = try await buildServices(configuration: configuration, logger: quiet)
        for email in admins {
            _ = try await services.auth.register(email: email, password: "admin password", role: .admin, origin: .commandLine)
        }
        try await seed(services)
        await services.close()
        let app = try await buildApplication(configuration: configuration, logger: logger)
        try await app.test(live ? .live : .router, test)
    }
}

/// A parsed JSON answer.
struct JSONBody {
    let object: [String: Any]

    init(_ response: TestResponse) throws {
        let data = Data(response.body.readableBytesView)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(String(decoding: data, as: UTF8.self))")
        }
        self.object = object
    }

    subscript(key: String) -> Any? { self.object[key] }
    func string(_ key: String) -> String? { self.object[key] as? String }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Requests the tests make over and over.
extension TestClientProtocol {
    func postJSON(_ uri: String, _ body: [String: Any], token: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await self.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: data))
    }

    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await self.execute(uri: uri, method: method, headers: headers, body: nil)
    }

    func register(_ email: String = "ann@example.org", password: String = "correct horse") async throws {
        let response = try await self.postJSON("/api/auth/register", ["email": email, "password": password])
        guard response.status == .created else { throw TestFailure("register: \(response.status)") }
    }

    /// Signs in and returns the token pair's JSON.
    func login(_ email: String = "ann@example.org", password: String = "correct horse", device: String? = nil) async throws -> JSONBody {
        var body: [String: Any] = ["email": email, "password": password]
        if let device { body["deviceName"] = device }
        let response = try await self.postJSON("/api/auth/login", body)
        guard response.status == .ok else { throw TestFailure("login: \(response.status) \(String(buffer: response.body))") }
        return try JSONBody(response)
    }

    func ping(_ token: String?) async throws -> HTTPResponse.Status {
        try await self.call(.get, "/api/v1/ping-auth", token: token).status
    }
}

/// Collects every log line and its metadata in memory, to check that no secret is ever logged.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "tessera.test") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    var text: String { self.lines.withLock { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            self.capture.lines.withLock { $0.append("\(event.level) \(event.message) \(merged)") }
        }
    }
}
