import Benchmark
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import TesseraCore
import TesseraServer

/// The whole server's router as `tessera serve` builds it, on a temporary SQLite file with one account.
///
/// Requests go to the responder directly: the request context is made per request as the server makes it, the
/// route is resolved, the middleware runs and the answer is encoded, but no socket or HTTP parser is involved. What
/// differs between `/health` and `/api/v1/ping-auth` here is exactly what a protected route costs more.
struct RouterFixture: Sendable {
    let responder: any HTTPResponder<TesseraRequestContext>
    let accessToken: String
    let logger: Logger

    /// Built once per process: making it creates a database and hashes passwords.
    static func shared() async throws -> RouterFixture { try await RouterFixtureCache.shared.fixture() }

    fileprivate static func make() async throws -> RouterFixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bench-router-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let configuration = Configuration(
            database: .sqlite(path: directory.appendingPathComponent("r.sqlite").path), jwtSecret: String(repeating: "r", count: 48),
            bcryptCost: 4, logLevel: .critical, stalenessBound: .seconds(86_400)
        )
        let services = try await buildServices(configuration: configuration, logger: logger)
        _ = try await services.auth.register(email: "r@x.org", password: "correct horse", origin: RequestOrigin())
        let pair = try await services.auth.login(email: "r@x.org", password: "correct horse", origin: RequestOrigin())
        let router = buildRouter(services: services, configuration: configuration, renderer: try await PageRenderer())
        return RouterFixture(responder: router.buildResponder(), accessToken: pair.accessToken, logger: logger)
    }

    /// One request through the router, as the server hands it over after parsing; returns the status.
    func respond(path: String, channel: any Channel) async throws -> HTTPResponse.Status {
        let head = HTTPRequest(
            method: .get, scheme: "http", authority: "127.0.0.1", path: path,
            headerFields: [.authorization: "Bearer \(self.accessToken)"]
        )
        let context = TesseraRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: self.logger))
        return try await self.responder.respond(to: Request(head: head, body: RequestBody(buffer: ByteBuffer())), context: context).status
    }
}

func routerBenchmarks() {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, .throughput], timeUnits: .nanoseconds, warmupIterations: 1000, scalingFactor: .kilo,
        maxDuration: .seconds(3), maxIterations: 1_000_000
    )
    // Both routes get the same request bytes (the bearer header included), as in scripts/bench-http.
    for (name, path) in [("/health (unprotected)", "/health"), ("/api/v1/ping-auth (protected, token seen before)", "/api/v1/ping-auth")] {
        Benchmark("router: \(name)", configuration: configuration) { benchmark in
            let fixture = try await RouterFixture.shared()
            let channel = EmbeddedChannel()
            guard try await fixture.respond(path: path, channel: channel) == .ok else { throw RouterBenchmarkError.notOK(path) }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try await fixture.respond(path: path, channel: channel)) }
        }
    }
}

enum RouterBenchmarkError: Error { case notOK(String) }

actor RouterFixtureCache {
    static let shared = RouterFixtureCache()
    private var built: RouterFixture?

    func fixture() async throws -> RouterFixture {
        if let built { return built }
        let fixture = try await RouterFixture.make()
        self.built = fixture
        return fixture
    }
}
