import Foundation
import TesseraTokens

/// A change of an account's role, as ``AuthStore/changeRole(_:)`` writes it. The store writes the `ROLE_CHANGED`
/// audit row itself: the role the account had is known only inside the transaction.
public struct RoleChange: Sendable {
    public var userId: UUID
    public var role: Role
    public var actorId: UUID?
    public var at: Date
    public var origin: RequestOrigin

    public init(userId: UUID, role: Role, actorId: UUID?, at: Date, origin: RequestOrigin) {
        self.userId = userId
        self.role = role
        self.actorId = actorId
        self.at = at
        self.origin = origin
    }
}

/// What a role change did: the account as it is now, the role it had, and the log rows of the cut (none when the
/// account had the role already: then nothing was written).
public struct RoleChangeOutcome: Sendable {
    public var user: User
    public var previousRole: Role
    public var entries: [RevocationEntry]

    public init(user: User, previousRole: Role, entries: [RevocationEntry]) {
        self.user = user
        self.previousRole = previousRole
        self.entries = entries
    }

    /// Whether the role changed (and every token of the account was revoked).
    public var changed: Bool { self.previousRole != self.user.role }
}

/// The deletion of an account, as ``AuthStore/deleteAccount(_:)`` writes it.
///
/// The row stays, as a tombstone that audit rows and log rows can still point at: its id, role, times and counters.
/// Everything that names or locates the person goes: the email becomes ``placeholderEmail(for:)``, the password
/// hash ``unusablePasswordHash``, sessions lose their address, user agent and device name, and audit rows about the
/// person lose the address, origin and device name (docs/OPERATIONS.md, "Deleting an account").
public struct AccountDeletion: Sendable {
    public var userId: UUID
    /// Who deleted it: the account itself (`DELETE /api/me`), an admin, or nil for the command line.
    public var actorId: UUID?
    public var at: Date
    public var origin: RequestOrigin

    public init(userId: UUID, actorId: UUID?, at: Date, origin: RequestOrigin) {
        self.userId = userId
        self.actorId = actorId
        self.at = at
        self.origin = origin
    }

    /// What a deleted account's `email` and `email_normalized` hold: not an address (no `@`, so no typed input
    /// normalizes to it and no sign-in can find it), unique (the id is), and free of anything the person gave.
    public static func placeholderEmail(for userId: UUID) -> String { "deleted:" + userId.lowercasedString }

    /// What a deleted account's password hash holds: not a bcrypt hash, so no password verifies against it.
    public static let unusablePasswordHash = "!deleted"
}
