import Crypto
import Foundation
import TesseraTokens

/// Personal API tokens: `tsr_` + 256 random bits (base64url, 43 characters) + a checksum of 8 characters
/// (base64url of the first 6 bytes of a SHA-256 of the random part). The prefix lets secret scanners and people
/// tell a Tessera token from noise; the checksum tells a typo or a made-up token from a revoked one without any I/O,
/// so that a flood of random tokens never reaches the database. Only the SHA-256 of the whole token is stored.
public enum APIToken {
    public static let prefix = "tsr_"
    static let randomLength = 43
    static let checksumLength = 8
    /// `tsr_` + 43 + 8.
    public static let length = 4 + 43 + 8

    /// A new token.
    public static func generate() -> String {
        let random = OpaqueToken.generate()
        return Self.prefix + random + Self.checksum(of: Substring(random))
    }

    /// Whether a presented string has the shape and the checksum of a token we make (not whether we made it).
    public static func isWellFormed(_ token: some StringProtocol) -> Bool {
        guard token.utf8.count == Self.length, token.hasPrefix(Self.prefix) else { return false }
        let body = token.dropFirst(Self.prefix.count)
        let random = body.prefix(Self.randomLength)
        let checksum = body.dropFirst(Self.randomLength)
        guard Base64URL.decode(Substring(random))?.count == 32 else { return false }
        return Self.checksum(of: Substring(random)) == String(checksum)
    }

    static func checksum(of random: Substring) -> String {
        let digest = SHA256.hash(data: Data(("tessera-api-token:" + random).utf8))
        return Base64URL.encode(digest.prefix(6))
    }

    /// What the database keeps and looks up by.
    public static func hash(_ token: some StringProtocol) -> String {
        OpaqueToken.hash(String(token))
    }
}

/// A personal API token as stored (never its secret).
public struct APITokenRecord: Sendable, Equatable {
    public var id: UUID
    public var userId: UUID
    public var name: String
    /// The holder's role when it was made: a change of role cuts the user's tokens, this one too.
    public var role: Role
    public var tokenVersion: Int64
    public var epoch: Int64
    public var createdAt: Date
    public var ip: String?
    public var userAgent: String?
    public var lastUsedAt: Date?
    public var expiresAt: Date
    public var invalidatedAt: Date?
    /// Whether the account, as the database says now, refuses it: a cut-off above its token version, deactivated,
    /// or deleted. The index says the same while it holds the user's cut-off; it forgets one after the refresh
    /// lifetime, and an API token can outlive that, so the database's word is read with the record.
    public var cutByAccount: Bool

    public init(
        id: UUID, userId: UUID, name: String, role: Role, tokenVersion: Int64, epoch: Int64, createdAt: Date, ip: String?, userAgent: String?,
        lastUsedAt: Date?, expiresAt: Date, invalidatedAt: Date?, cutByAccount: Bool = false
    ) {
        self.cutByAccount = cutByAccount
        self.id = id
        self.userId = userId
        self.name = name
        self.role = role
        self.tokenVersion = tokenVersion
        self.epoch = epoch
        self.createdAt = createdAt
        self.ip = ip
        self.userAgent = userAgent
        self.lastUsedAt = lastUsedAt
        self.expiresAt = expiresAt
        self.invalidatedAt = invalidatedAt
    }

    /// The token as a verified caller: its id stands for both `jti` and session, so that revoking it (a `token`
    /// row) and the user's and everyone's cuts refuse it, while signing out of one device does not.
    public var caller: VerifiedAccessToken {
        VerifiedAccessToken(
            userId: self.userId, sessionId: self.id, jti: self.id, role: self.role, version: self.tokenVersion, epoch: self.epoch,
            issuedAt: self.createdAt, expiresAt: self.expiresAt, notBefore: nil, keyId: ""
        )
    }
}

/// A token to store: made by ``AuthService/createAPIToken(for:name:days:origin:)``.
public struct NewAPIToken: Sendable {
    public var id = UUID()
    public var userId: UUID
    public var name: String
    public var tokenHash: String
    public var createdAt: Date
    public var expiresAt: Date
    public var origin: RequestOrigin

    public init(userId: UUID, name: String, tokenHash: String, createdAt: Date, expiresAt: Date, origin: RequestOrigin) {
        self.userId = userId
        self.name = name
        self.tokenHash = tokenHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.origin = origin
    }
}
