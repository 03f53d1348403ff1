import Foundation
import Hummingbird
import Logging
import Testing
import TesseraCore
import TesseraStore

@testable import TesseraServer

/// `openapi.yaml` is the contract users read: it must list exactly the routes the router serves.
@Suite struct OpenAPIDocumentTests {
    /// `METHOD /path` for every operation in the document, read from its two-space-indented path keys.
    static func documentedOperations() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        var operations: Set<String> = []
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("components:") {
                path = nil
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
                if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(method) { operations.insert("\(method) \(path)") }
            }
        }
        return operations
    }

    @Test func everyServedRouteIsDocumentedAndNothingElse() async throws {
        let documented = try Self.documentedOperations()
        let served = try await Self.servedOperations()
        #expect(documented == served, "only documented: \(documented.subtracting(served)); only served: \(served.subtracting(documented))")
    }

    /// `METHOD /path` for every route the router serves (without the 405 fallbacks).
    static func servedOperations() async throws -> Set<String> {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-openapi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Configuration(
            database: .sqlite(path: directory.appendingPathComponent("t.sqlite").path), jwtSecret: TestApp.secret, bcryptCost: 4
        )
        let services = try await buildServices(configuration: configuration, logger: TestDatabaseLogger.logger)
        let router = Router(context: TesseraRequestContext.self)
        addAPIRoutes(to: router, services: services, registrationOpen: true)
        let routes = router.routes
        await services.close()
        return Set(
            routes.map { route in
                let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                return "\(route.method.rawValue) /" + path.joined(separator: "/")
            }
        )
    }
}

enum TestDatabaseLogger {
    static let logger: Logger = {
        var logger = Logger(label: "tessera.test")
        logger.logLevel = .critical
        return logger
    }()
}
