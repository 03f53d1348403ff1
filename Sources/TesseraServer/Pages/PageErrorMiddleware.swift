import Hummingbird
import TesseraCore

/// Errors on page routes: the pages' script gets problem+json (shown inline beside the button); a browser without
/// the script gets an error page that says what went wrong and links back.
struct PageErrorMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let renderer: PageRenderer

    struct ErrorPage: Sendable {
        let title: String
        let status: Int
        let detail: String
        let signedIn: Bool
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            if request.isPageFetch { throw error }
            let problem = ProblemMiddleware<Context>.problem(for: error, request: request, logger: context.logger)
            let page = ErrorPage(title: problem.status.reasonPhrase, status: problem.status.code, detail: problem.detail, signedIn: context.identity != nil)
            return self.renderer.render("error", page, status: problem.status)
        }
    }
}
