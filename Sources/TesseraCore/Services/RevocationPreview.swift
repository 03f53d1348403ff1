import Foundation
import TesseraTokens

/// What an operator action would take back (or, for an un-revoke, give back), counted without writing anything: the
/// answer of a dry run.
///
/// The counts describe the database at the moment of the dry run; the action run right after (with nothing else
/// written in between) cuts or revives exactly these.
public struct RevocationPreview: Sendable, Equatable {
    /// An operator action that can be rehearsed.
    public enum Action: Sendable, Equatable {
        /// ``AuthService/revokeUsers(_:actorId:reason:origin:)``: every token of each of these accounts.
        case revokeUsers([UUID])
        /// ``AuthService/revokeAll(actorId:reason:origin:)``: every token of every account.
        case revokeAll
        /// ``AuthService/deactivate(userId:actorId:reason:origin:)``: every token of the account, and it goes inactive.
        case deactivate(UUID)
        /// ``AuthService/unrevoke(_:actorId:reason:origin:)``: the latest cut of the target undone.
        case unrevoke(UnrevokeRequest.Target)
        /// ``AuthService/changeRole(userId:to:actorId:origin:)``: every token of the account, unless it has the role
        /// already (then nothing: zero accounts).
        case changeRole(UUID, Role)
        /// ``AuthService/deleteAccount(userId:actorId:origin:)``: every token of the account, which is then deleted.
        case deleteAccount(UUID)
    }

    /// The accounts whose cut-off the action moves: the distinct accounts named (revoke, deactivate, un-revoke of one
    /// user), or every account (revoke-all and its undo, which move the cut-off of everyone).
    public var accounts: Int
    /// Sessions that are live now and would be refused afterwards — not signed out, not expired, not cut by an
    /// earlier revocation. For an un-revoke: sessions refused now that would be accepted again.
    public var sessions: Int
    /// Of those sessions, the ones whose latest access token may still be unexpired: issued (at sign-in, refresh or
    /// re-keying) within the access-token lifetime and its leeway. Access tokens themselves are not stored, so this
    /// counts sessions, at most one token each; an older token of the same session, still unexpired, is not counted
    /// again, and a single token revoked on its own (RFC 7009) or signed with a revoked key is still counted.
    public var accessTokens: Int

    public init(accounts: Int, sessions: Int, accessTokens: Int) {
        self.accounts = accounts
        self.sessions = sessions
        self.accessTokens = accessTokens
    }
}
