import Hummingbird
import TesseraCore

/// `{"dryRun": true, "accounts", "sessions", "accessTokens"}`: what a revoking admin route would have done, had its
/// body not said `"dryRun": true` (see ``RevocationPreview``).
struct DryRunResponse: ResponseEncodable {
    let dryRun = true
    var accounts: Int
    var sessions: Int
    var accessTokens: Int

    init(_ preview: RevocationPreview) {
        self.accounts = preview.accounts
        self.sessions = preview.sessions
        self.accessTokens = preview.accessTokens
    }
}

/// The answer of a route that can be rehearsed: its own when it ran, ``DryRunResponse`` when it was a dry run.
enum DryRunOr<Done: ResponseGenerator>: ResponseGenerator {
    case done(Done)
    case dryRun(RevocationPreview)

    func response(from request: Request, context: some RequestContext) throws -> Response {
        switch self {
        case .done(let answer): try answer.response(from: request, context: context)
        case .dryRun(let preview): try DryRunResponse(preview).response(from: request, context: context)
        }
    }
}
