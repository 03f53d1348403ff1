/// Why a cut was made. Stored with every row of the revocation log (`cause`), it decides whether an operator may
/// undo the cut: only an operator's bulk actions can be undone; every cut made for security is final.
public enum RevocationCause: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// `revoke` of a list of users (API, console or CLI): undoable.
    case adminRevoke = "admin_revoke"
    /// `revoke-all`: undoable.
    case revokeAll = "revoke_all"
    /// The user changed their own password.
    case passwordChanged = "password_changed"
    /// An operator set a new password.
    case passwordReset = "password_reset"
    /// The user signed out of all devices.
    case signOutEverywhere = "sign_out_everywhere"
    /// The user signed out of every other device.
    case signOutOthers = "sign_out_others"
    /// The account was deactivated.
    case deactivated
    /// A spent refresh token was presented again: theft.
    case refreshTokenReuse = "refresh_token_reuse"
    /// One session signed out.
    case signOut = "sign_out"
    /// One access token revoked through RFC 7009 by its holder or a client.
    case tokenRevoked = "token_revoked"
    /// A signing key was revoked (it leaked).
    case keyRevoked = "key_revoked"
    /// The account's role changed: a token must never carry a role its holder no longer has.
    case roleChanged = "role_changed"
    /// The account was deleted.
    case accountDeleted = "account_deleted"
    /// A row that undoes an earlier one.
    case unrevoke
    /// A row written before causes were recorded whose cause could not be recovered: treated as final.
    case unknown

    /// Whether an operator's un-revoke may take this cut back. Cuts made by a password change or reset, a user's own
    /// sign-out, deactivation, reuse detection, a role change or deletion stay: undoing them would revive the tokens of
    /// whoever they were made against (or tokens carrying a role their holder no longer has).
    public var isUndoable: Bool {
        switch self {
        case .adminRevoke, .revokeAll: true
        default: false
        }
    }

    /// The cause in words, for messages to operators.
    public var description: String {
        switch self {
        case .adminRevoke: "an operator's revoke"
        case .revokeAll: "a revoke-all"
        case .passwordChanged: "a password change"
        case .passwordReset: "an operator's password reset"
        case .signOutEverywhere: "the user signing out of all devices"
        case .signOutOthers: "the user signing out of other devices"
        case .deactivated: "deactivating the account"
        case .refreshTokenReuse: "refresh token reuse detection"
        case .signOut: "a sign-out"
        case .tokenRevoked: "a token revocation"
        case .keyRevoked: "revoking a signing key"
        case .roleChanged: "a change of the account's role"
        case .accountDeleted: "deleting the account"
        case .unrevoke: "an un-revoke"
        case .unknown: "a cut recorded before causes were kept"
        }
    }

    /// The cause stored in a log row; an unrecognised or missing value is ``unknown`` (final).
    public init(stored: String?) {
        self = stored.flatMap(Self.init(rawValue:)) ?? .unknown
    }
}
