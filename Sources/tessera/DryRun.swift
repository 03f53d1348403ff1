import ArgumentParser
import TesseraCore

/// `--dry-run` of the commands that revoke or un-revoke: counts what the command would do and changes nothing, so it
/// asks no confirmation. It prints one line with the counts the admin routes answer to `"dryRun": true`.
enum DryRun {
    /// What the command does to the sessions it counts.
    enum Effect {
        /// Live sessions and access tokens are refused from now on.
        case cut
        /// Refused sessions and access tokens are accepted again.
        case revive

        var verb: String {
            switch self {
            case .cut: "cut"
            case .revive: "revive"
            }
        }
    }

    static func help(_ effect: Effect) -> ArgumentHelp {
        let sessions = effect == .cut ? "live sessions and live access tokens" : "refused sessions and access tokens"
        return ArgumentHelp(
            "Change nothing (no --yes needed): print how many accounts, \(sessions) this would \(effect.verb).",
            discussion: """
                Access tokens are not stored: they are counted per session, one for each session whose latest access \
                token was issued (at sign-in or refresh) within ACCESS_TOKEN_TTL as set for this command, so may still be \
                unexpired.
                """
        )
    }

    /// `dry run, nothing changed: would cut 2 accounts, 3 live sessions, 1 live access token` (an un-revoke:
    /// `would revive 1 account, 3 sessions, 1 access token`).
    static func line(_ preview: RevocationPreview, _ effect: Effect) -> String {
        let live = effect == .cut ? "live " : ""
        return "dry run, nothing changed: would \(effect.verb) \(Self.count(preview.accounts, "account")), "
            + "\(Self.count(preview.sessions, live + "session")), \(Self.count(preview.accessTokens, live + "access token"))"
    }

    private static func count(_ number: Int, _ noun: String) -> String { "\(number) \(noun)\(number == 1 ? "" : "s")" }
}
