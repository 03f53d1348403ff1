import Foundation
import Hummingbird
import Logging
import TesseraGuard
import TesseraGuardHummingbird

/// A small service that trusts Tessera: `GET /hello` answers the caller's user id to a valid, unrevoked Tessera access
/// token, checked in memory by a ``TesseraGuard``; `GET /health` answers anyone.
///
/// Environment: `TESSERA_URL`, `TESSERA_CLIENT_ID`, `TESSERA_CLIENT_SECRET` (a client made with
/// `tessera clients add NAME --feed`), `JWT_ISSUER`, `JWT_AUDIENCE` (Tessera's), `PORT` (8090), `HOST` (127.0.0.1),
/// `TESSERA_STALENESS` (5s), `JWT_ALGORITHM` (optional: EdDSA or ES256; by default the JWKS's), `LOG_LEVEL` (info).
@main
struct GuardedService {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        func required(_ name: String) -> String {
            guard let value = environment[name], !value.isEmpty else {
                FileHandle.standardError.write(Data("guarded-service: \(name) is required\n".utf8))
                exit(1)
            }
            return value
        }
        var logger = Logger(label: "guarded-service")
        logger.logLevel = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info

        guard let staleness = Self.duration(environment["TESSERA_STALENESS"] ?? "5s"), staleness >= .milliseconds(500) else {
            FileHandle.standardError.write(Data("guarded-service: TESSERA_STALENESS is a duration such as 5s or 1500ms, at least 500ms\n".utf8))
            exit(1)
        }
        var algorithm: SigningAlgorithm?
        if let name = environment["JWT_ALGORITHM"], !name.isEmpty {
            guard let pinned = SigningAlgorithm(rawValue: name), pinned.isAsymmetric else {
                FileHandle.standardError.write(Data("guarded-service: JWT_ALGORITHM must be EdDSA or ES256\n".utf8))
                exit(1)
            }
            algorithm = pinned
        }
        let configuration = TesseraGuardConfiguration(
            tesseraURL: required("TESSERA_URL"), issuer: environment["JWT_ISSUER"] ?? "tessera", audience: environment["JWT_AUDIENCE"] ?? "tessera",
            clientId: required("TESSERA_CLIENT_ID"), clientSecret: required("TESSERA_CLIENT_SECRET"), stalenessBound: staleness, algorithm: algorithm
        )
        let tesseraGuard = TesseraGuard(configuration: configuration, logger: logger)

        let router = Router(context: GuardedContext.self)
        router.get("health") { _, _ in Health(status: "ok", revocations: tesseraGuard.isCurrent ? "current" : "stale") }
        router.group().add(middleware: TesseraGuardMiddleware<GuardedContext>(tesseraGuard)).get("hello") { _, context in
            Hello(userId: context.identity.map { Self.lowercase($0.userId) } ?? "")
        }
        var app = Application(
            router: router,
            configuration: .init(address: .hostname(environment["HOST"] ?? "127.0.0.1", port: Int(environment["PORT"] ?? "") ?? 8090)),
            logger: logger
        )
        app.addServices(TesseraGuardService(tesseraGuard))
        try await app.runService()
    }

    /// A UUID in lower case, as Tessera writes ids, formatted in one allocation.
    static func lowercase(_ id: UUID) -> String {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return withUnsafeBytes(of: id.uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                var at = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        out[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    out[at] = hex[Int(byte >> 4)]
                    out[at + 1] = hex[Int(byte & 0x0F)]
                    at += 2
                }
                return at
            }
        }
    }

    /// `5s`, `1500ms`, or a number of seconds.
    static func duration(_ text: String) -> Duration? {
        if text.hasSuffix("ms"), let value = Int64(text.dropLast(2)) { return .milliseconds(value) }
        if let value = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), value.isFinite, value >= 0 { return .milliseconds(Int64(value * 1000)) }
        return nil
    }
}

struct GuardedContext: GuardedRequestContext {
    var coreContext: CoreRequestContextStorage
    var identity: VerifiedAccessToken?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.identity = nil
    }
}

struct Hello: ResponseEncodable {
    var userId: String
}

struct Health: ResponseEncodable {
    var status: String
    var revocations: String
}
