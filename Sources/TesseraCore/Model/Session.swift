import Foundation
import TesseraTokens

/// One device's sign-in: what the sessions list shows and what a refresh token belongs to.
public struct Session: Sendable, Equatable {
    public var id: UUID
    public var userId: UUID
    public var createdAt: Date
    public var lastSeenAt: Date
    public var expiresAt: Date
    public var ip: String?
    public var userAgent: String?
    public var deviceName: String?
    public var terminalId: String?
    /// The user's token version this session's tokens carry (`ver`).
    public var tokenVersion: Int64
    /// The global epoch this session's tokens carry (`epoch`).
    public var epoch: Int64

    public init(
        id: UUID, userId: UUID, createdAt: Date, lastSeenAt: Date, expiresAt: Date, ip: String?, userAgent: String?,
        deviceName: String?, terminalId: String?, tokenVersion: Int64, epoch: Int64
    ) {
        self.id = id
        self.userId = userId
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
        self.ip = ip
        self.userAgent = userAgent
        self.deviceName = deviceName
        self.terminalId = terminalId
        self.tokenVersion = tokenVersion
        self.epoch = epoch
    }
}

/// What the store needs to open a session; the token version and epoch are read inside the same transaction.
public struct NewSession: Sendable {
    public var id: UUID
    public var userId: UUID
    public var refreshTokenHash: String
    public var createdAt: Date
    public var expiresAt: Date
    public var origin: RequestOrigin

    public init(id: UUID = UUID(), userId: UUID, refreshTokenHash: String, createdAt: Date, expiresAt: Date, origin: RequestOrigin) {
        self.id = id
        self.userId = userId
        self.refreshTokenHash = refreshTokenHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.origin = origin
    }
}

/// A live session together with its owner, as the store hands it back after a sign-in or a refresh.
public struct SessionGrant: Sendable {
    public var session: Session
    public var user: User

    public init(session: Session, user: User) {
        self.session = session
        self.user = user
    }
}
