import Foundation

/// An access token whose signature, algorithm, type, issuer, audience and times have been checked,
/// with its claims parsed into their types. Whether it was revoked is the ``RevocationIndex``'s answer.
public struct VerifiedAccessToken: Sendable, Equatable {
    public var userId: UUID
    public var sessionId: UUID
    public var jti: UUID
    public var role: Role
    public var version: Int64
    public var epoch: Int64
    public var issuedAt: Date
    public var expiresAt: Date
    public var notBefore: Date?
    /// The `kid` of the key that signed it.
    public var keyId: String

    public init(
        userId: UUID, sessionId: UUID, jti: UUID, role: Role, version: Int64, epoch: Int64, issuedAt: Date, expiresAt: Date, notBefore: Date? = nil,
        keyId: String = ""
    ) {
        self.keyId = keyId
        self.userId = userId
        self.sessionId = sessionId
        self.jti = jti
        self.role = role
        self.version = version
        self.epoch = epoch
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.notBefore = notBefore
    }
}
