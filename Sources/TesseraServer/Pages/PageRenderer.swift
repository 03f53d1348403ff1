import Foundation
import Hummingbird
import Mustache

/// Renders the pages' Mustache templates (`Resources/templates`) and serves their stylesheet and script
/// (`Resources/static`), all read once at start from the module's resources: nothing is loaded from another host.
public struct PageRenderer: Sendable {
    let library: MustacheLibrary
    let assets: [String: (contentType: String, body: ByteBuffer)]

    public init() async throws {
        // Foundation on Linux already points resourceURL into the copied `Resources` folder; on Darwin it does not.
        let candidates = [Bundle.module.resourceURL, Bundle.module.resourceURL?.appendingPathComponent("Resources")].compactMap { $0 }
        guard let root = candidates.first(where: { FileManager.default.fileExists(atPath: $0.appendingPathComponent("templates").path) }) else {
            throw PageRendererError(description: "the page templates are missing from the build (looked in \(candidates.map(\.path)))")
        }
        self.library = try await MustacheLibrary(directory: root.appendingPathComponent("templates").path)
        var assets: [String: (String, ByteBuffer)] = [:]
        for (name, type) in [("tessera.css", "text/css; charset=utf-8"), ("tessera.js", "text/javascript; charset=utf-8")] {
            let data = try Data(contentsOf: root.appendingPathComponent("static").appendingPathComponent(name))
            assets[name] = (type, ByteBuffer(bytes: data))
        }
        self.assets = assets
    }

    /// A page: `text/html` that is never cached, may not be framed, and may run only Tessera's own script.
    func render(_ template: String, _ page: some Sendable, status: HTTPResponse.Status = .ok, cookies: [Cookie] = []) -> Response {
        let html = self.library.render(page, withTemplate: template) ?? "<!doctype html><title>Tessera</title><p>Page \(template) is missing.</p>"
        var response = Response(status: status, headers: Self.pageHeaders, body: .init(byteBuffer: ByteBuffer(string: html)))
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// The stylesheet or script, cacheable for an hour.
    func asset(named name: String) -> Response? {
        guard let asset = self.assets[name] else { return nil }
        return Response(
            status: .ok,
            headers: [.contentType: asset.contentType, .cacheControl: "public, max-age=3600", .init("X-Content-Type-Options")!: "nosniff"],
            body: .init(byteBuffer: asset.body)
        )
    }

    static let pageHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'",
        .init("X-Frame-Options")!: "DENY",
        .init("X-Content-Type-Options")!: "nosniff",
        .init("Referrer-Policy")!: "same-origin",
    ]
}

struct PageRendererError: Error, CustomStringConvertible {
    var description: String
}
