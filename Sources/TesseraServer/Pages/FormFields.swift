import Foundation
import Hummingbird

/// The fields of an `application/x-www-form-urlencoded` body, as the pages' forms and script send them.
struct FormFields: Sendable {
    private(set) var values: [String: String] = [:]

    /// Names sent more than once (the first occurrence is the one kept).
    private(set) var repeated: Set<String> = []

    /// Parses a body; the first occurrence of a name wins.
    init(_ body: String) {
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), !name.isEmpty else { continue }
            guard self.values[name] == nil else {
                self.repeated.insert(name)
                continue
            }
            self.values[name] = parts.count > 1 ? (Self.decode(parts[1]) ?? "") : ""
        }
    }

    subscript(_ name: String) -> String? { self.values[name] }

    /// A field that must be present and not blank.
    func require(_ name: String, label: String) throws -> String {
        guard let value = self.values[name], !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ProblemError(.badRequest, code: "invalid_body", detail: "\(label) is required.")
        }
        return value
    }

    /// The optional `reason` of an admin action, at most 200 characters, nil when blank.
    var reason: String? {
        self.values["reason"].flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
    }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}

extension Request {
    /// The form fields of a page's POST; refuses other media types with 415.
    mutating func formFields(context: some RequestContext) async throws -> FormFields {
        let type = self.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw ProblemError(.unsupportedMediaType, code: "unsupported_media_type", detail: "Pages accept application/x-www-form-urlencoded forms.")
        }
        let buffer = try await self.collectBody(upTo: context.maxUploadSize)
        return FormFields(String(buffer: buffer))
    }

    /// True when the pages' script sent this request with `fetch`: answers are JSON, not redirects or HTML.
    var isPageFetch: Bool { self.headers[BrowserSession.fetchHeader] == "1" }
}

/// Where a page action leads: 303 for a plain form post, `{"redirect"}` for the pages' script.
func pageRedirect(to location: String, request: Request, cookies: [Cookie] = []) -> Response {
    var response: Response
    if request.isPageFetch {
        let body = (try? JSONSerialization.data(withJSONObject: ["redirect": location], options: [.withoutEscapingSlashes])) ?? Data()
        response = Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    } else {
        response = Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }
    for cookie in cookies { response.setCookie(cookie) }
    return response
}
