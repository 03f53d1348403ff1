import ServiceLifecycle
import TesseraGuard

/// Runs a ``TesseraGuard`` in the application's `ServiceGroup` beside the HTTP server; it stops at graceful shutdown.
public struct TesseraGuardService: Service {
    public let tesseraGuard: TesseraGuard

    public init(_ tesseraGuard: TesseraGuard) {
        self.tesseraGuard = tesseraGuard
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await self.tesseraGuard.run() }
    }
}
