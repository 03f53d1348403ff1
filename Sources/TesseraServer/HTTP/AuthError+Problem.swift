import Hummingbird
import TesseraCore

/// The one place where Core's refusals become HTTP answers.
extension AuthError {
    var problem: ProblemError {
        switch self {
        case .invalidCredentials:
            ProblemError(.unauthorized, code: "invalid_credentials", detail: "The email or password is wrong.")
        case .accountInactive:
            ProblemError(.forbidden, code: "account_inactive", detail: "This account is deactivated.")
        case .tooManyAttempts(let retryAfter):
            ProblemError(
                .tooManyRequests, code: "too_many_attempts", detail: "Too many failed sign-ins; try again in \(retryAfter) seconds.",
                headers: [.retryAfter: "\(retryAfter)"]
            )
        case .emailTaken:
            ProblemError(.conflict, code: "email_taken", detail: "An account with this email exists.")
        case .invalidEmail:
            ProblemError(.unprocessableContent, code: "invalid_email", detail: "This is not an email address.")
        case .weakPassword(let why):
            ProblemError(.unprocessableContent, code: "weak_password", detail: "The password is too weak: \(why).")
        case .invalidRefreshToken:
            ProblemError(.unauthorized, code: "invalid_refresh_token", detail: "The refresh token is not valid.")
        case .invalidToken: Self.invalidTokenProblem
        case .tokenRevoked: Self.tokenRevokedProblem
        case .sessionNotFound:
            ProblemError(.notFound, code: "session_not_found", detail: "No such session among yours.")
        case .apiTokenNotFound:
            ProblemError(.notFound, code: "api_token_not_found", detail: "No such API token among yours.")
        case .userNotFound:
            ProblemError(.notFound, code: "user_not_found", detail: "No such user.")
        case .forbidden:
            ProblemError(.forbidden, code: "forbidden", detail: "This needs the admin role.")
        case .nothingToUndo:
            ProblemError(.conflict, code: "nothing_to_undo", detail: "There is no revocation left to undo.")
        case .cutIsFinal(let cause):
            ProblemError(
                .conflict, code: "cut_is_final",
                detail: "The latest revocation was made by \(cause.description) and cannot be undone; nothing older can be undone past it."
            )
        case .accountInactiveCannotBeUnrevoked:
            ProblemError(.conflict, code: "account_inactive", detail: "The account is deactivated; activate it before un-revoking.")
        case .invalidArgument(let why):
            ProblemError(.badRequest, code: "invalid_request", detail: why)
        case .revocationIndexStale: Self.revocationIndexStaleProblem
        case .busy(let retryAfter):
            ProblemError(
                .serviceUnavailable, code: "busy", detail: "Too many sign-ins are being checked right now; try again in \(retryAfter) seconds.",
                headers: [.retryAfter: "\(retryAfter)"]
            )
        case .weakSecret(let minimum):
            ProblemError(.internalServerError, code: "misconfigured", detail: "The signing secret is shorter than \(minimum) bytes.")
        case .lastAdmin:
            ProblemError(
                .conflict, code: "last_admin",
                detail: "This is the last active admin: make another account admin first, so that someone can still administer Tessera."
            )
        case .ownAccountNeedsPassword:
            ProblemError(.conflict, code: "own_account", detail: "Delete your own account with DELETE /api/me and your password.")
        }
    }

    // The refusals of a protected request, encoded once (see ``ProblemError/prepared()``).
    private static let invalidTokenProblem = ProblemError.unauthorized(
        code: "invalid_token", detail: "The access token is missing, malformed, expired or not ours."
    ).prepared()
    private static let tokenRevokedProblem = ProblemError.unauthorized(code: "token_revoked", detail: "The access token was revoked.").prepared()
    private static let revocationIndexStaleProblem = ProblemError(
        .serviceUnavailable, code: "revocation_index_stale",
        detail: "Revocations cannot be checked right now; refusing rather than admitting revoked tokens.",
        headers: [.retryAfter: "1"]
    ).prepared()
}
