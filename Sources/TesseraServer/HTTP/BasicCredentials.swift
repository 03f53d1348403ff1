import Foundation

/// HTTP Basic client credentials (RFC 7617) as RFC 6749 §2.3.1 sends them: `Basic base64(id:secret)`, each part
/// form-encoded first. One reading for the OAuth endpoints and the revocation feed.
enum BasicCredentials {
    /// The id and secret of an `Authorization` value; nil when it is not `Basic` or does not decode.
    static func parse(_ header: String) -> (id: String, secret: String)? {
        guard header.count > 6, header.prefix(6).lowercased() == "basic ",
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":"),
            let id = FormFields.decode(text[..<colon]), let secret = FormFields.decode(text[text.index(after: colon)...])
        else { return nil }
        return (id, secret)
    }
}
