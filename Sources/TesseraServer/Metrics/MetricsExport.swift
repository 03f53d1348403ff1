import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import TesseraCore
import TesseraStore

/// The process's metrics backend: swift-metrics bootstrapped once with swift-prometheus, whose registry `/metrics`
/// renders. Everything the service counts goes through swift-metrics (``ServiceMetrics``, Hummingbird's
/// `MetricsMiddleware`, the store's group commits), so the backend is chosen here and nowhere else.
public enum PrometheusExport {
    /// The registry, bootstrapping swift-metrics on first use (once per process: swift-metrics allows no second
    /// bootstrap). Read it before any service is built, so that their handles are bound to it.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = Self.rename
        // Requests take tens of microseconds to a few hundred milliseconds (a sign-in's bcrypt): buckets from 100 µs.
        factory.durationHistogramBuckets[Self.httpDuration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2_500),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
        ]
        factory.durationHistogramBuckets["tessera_revocation_follower_lag_seconds"] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.valueHistogramBuckets["tessera_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    static let httpDuration = "tessera_http_request_duration_seconds"

    /// Hummingbird's metric and label names (OpenTelemetry's dotted ones) in Prometheus's style, under `tessera_`.
    @Sendable static func rename(_ name: String, _ labels: [(String, String)]) -> (String, [(String, String)]) {
        let renamedLabels = labels.map { (key, value) -> (String, String) in
            switch key {
            case "http.route": ("route", value)
            case "http.request.method": ("method", value)
            case "http.response.status_code", "error.type": ("status", value)
            default: (key, value)
            }
        }
        switch name {
        case "hb.requests": return ("tessera_http_requests_total", renamedLabels)
        case "http.server.request.duration": return (Self.httpDuration, renamedLabels)
        case "hb.request.errors": return ("tessera_http_request_errors_total", renamedLabels)
        case "http.server.active_requests": return ("tessera_http_active_requests", renamedLabels)
        default: return (name, renamedLabels)
        }
    }
}

/// The gauges read at each scrape: what the index holds and how old it is. Read then rather than on every change,
/// so that the path of a token check never touches them.
struct IndexGauges: Sendable {
    let index: RevocationIndex
    let started: ContinuousClock.Instant
    let entries: [(table: String, gauge: Metrics.Gauge)]
    let age = Metrics.Gauge(label: "tessera_revocation_index_age_seconds")
    let appliedSeq = Metrics.Gauge(label: "tessera_revocation_log_applied_seq")
    let globalEpoch = Metrics.Gauge(label: "tessera_revocation_global_epoch")
    let revokedKeys = Metrics.Gauge(label: "tessera_revoked_signing_keys")

    init(index: RevocationIndex) {
        self.index = index
        self.started = .now
        self.entries = ["tokens", "sessions", "subjects"].map { ($0, Metrics.Gauge(label: "tessera_revocation_index_entries", dimensions: [("table", $0)])) }
    }

    func update() {
        let now = ContinuousClock.now
        let counts = self.index.counts
        for (table, gauge) in self.entries {
            switch table {
            case "tokens": gauge.record(counts.tokens)
            case "sessions": gauge.record(counts.sessions)
            default: gauge.record(counts.subjects)
            }
        }
        // Never read (the log has not been read since start): as old as the process, which is what an alert on age
        // wants to see.
        self.age.record((self.index.age(at: now) ?? self.started.duration(to: now)).timeInterval)
        self.appliedSeq.record(self.index.lastAppliedSeq)
        self.globalEpoch.record(counts.globalEpoch)
        self.revokedKeys.record(self.index.revokedKeys.count)
    }
}

/// `GET /metrics` in the Prometheus text format. On the main port only to a bearer of `TESSERA_METRICS_TOKEN`
/// (compared in constant time); on the metrics port (loopback by default) to anyone who can reach it, unless a
/// token is set, which is then asked for there too.
struct MetricsController: Sendable {
    let gauges: IndexGauges
    /// SHA-256 of the token that may read; nil lets anyone who reaches the port read.
    let tokenDigest: SHA256.Digest?

    init(index: RevocationIndex, token: String?) {
        self.gauges = IndexGauges(index: index)
        self.tokenDigest = token.map { SHA256.hash(data: Data($0.utf8)) }
    }

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("metrics") { request, _ in try self.scrape(request) }
    }

    func scrape(_ request: Request) throws -> Response {
        if let tokenDigest = self.tokenDigest {
            guard let presented = Self.bearer(request), SHA256.hash(data: Data(presented.utf8)) == tokenDigest else {
                // Digests compared: the comparison's time says nothing about the token (swift-crypto compares
                // digests in constant time), nor does its length.
                throw Self.refused
            }
        }
        self.gauges.update()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        PrometheusExport.registry.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer))
        )
    }

    /// The token of the one `Authorization: Bearer` header, read by the same parser as every bearer route.
    static func bearer(_ request: Request) -> String? {
        let fields = request.headers.filter { $0.name == .authorization }
        guard fields.count == 1, let field = fields.first else { return nil }
        return field.withUnsafeBytesOfValue { header in
            guard case .token(let range) = BearerToken.parse(header) else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: header[range]), as: UTF8.self)
        }
    }

    static let refused = ProblemError(
        .unauthorized, code: "invalid_token", detail: "The metrics need the bearer token TESSERA_METRICS_TOKEN.",
        headers: [.wwwAuthenticate: "Bearer realm=\"tessera-metrics\""]
    )
}

/// The metrics port: `/metrics` alone, on an address of its own (loopback unless told otherwise).
func buildMetricsApplication(configuration: Configuration, port: Int, index: RevocationIndex, logger: Logger) -> some ApplicationProtocol {
    let router = Router()
    router.add(middleware: RequestIdMiddleware())
    MetricsController(index: index, token: configuration.metricsToken).addRoutes(to: router)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.metricsHost, port: port), serverName: "tessera"),
        onServerRunning: { channel in
            logger.info(
                "metrics ready",
                metadata: ["address": "\(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?")"]
            )
        },
        logger: logger
    )
}
