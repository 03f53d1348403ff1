import Foundation
import TesseraTokens

/// An account as the rest of the system sees it (never with its password hash).
public struct User: Sendable, Equatable, Codable {
    public var id: UUID
    public var email: String
    public var role: Role
    public var isActive: Bool
    public var createdAt: Date

    public init(id: UUID, email: String, role: Role, isActive: Bool, createdAt: Date) {
        self.id = id
        self.email = email
        self.role = role
        self.isActive = isActive
        self.createdAt = createdAt
    }
}

/// An account together with the bcrypt hash of its password, only for checking a sign-in.
public struct UserCredentials: Sendable {
    public var user: User
    public var passwordHash: String

    public init(user: User, passwordHash: String) {
        self.user = user
        self.passwordHash = passwordHash
    }
}

/// What the store needs to create an account.
public struct NewUser: Sendable {
    public var id: UUID
    public var email: String
    public var normalizedEmail: String
    public var passwordHash: String
    public var role: Role
    public var createdAt: Date

    public init(id: UUID = UUID(), email: String, normalizedEmail: String, passwordHash: String, role: Role, createdAt: Date) {
        self.id = id
        self.email = email
        self.normalizedEmail = normalizedEmail
        self.passwordHash = passwordHash
        self.role = role
        self.createdAt = createdAt
    }
}
