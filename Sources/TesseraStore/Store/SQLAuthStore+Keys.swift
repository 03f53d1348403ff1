import Foundation
import SQLKit
import TesseraCore

/// One row of `signing_keys`: an asymmetric key pair, its private half sealed.
public struct StoredSigningKey: Sendable, Equatable {
    public var kid: String
    public var algorithm: SigningAlgorithm
    public var publicKey: [UInt8]
    /// AES-GCM `nonce || ciphertext || tag`, base64url; nil once destroyed.
    public var sealedPrivateKey: String?
    /// Which key-encryption key sealed it (``KeyEncryption/Key/id``).
    public var sealedWith: String?
    public var createdAt: Date
    /// When it starts signing (a later key's `activeFrom` ends its turn).
    public var activeFrom: Date
    public var retiredAt: Date?
    public var revokedAt: Date?
    public var destroyedAt: Date?

    public init(
        kid: String, algorithm: SigningAlgorithm, publicKey: [UInt8], sealedPrivateKey: String?, sealedWith: String?, createdAt: Date, activeFrom: Date,
        retiredAt: Date? = nil, revokedAt: Date? = nil, destroyedAt: Date? = nil
    ) {
        self.kid = kid
        self.algorithm = algorithm
        self.publicKey = publicKey
        self.sealedPrivateKey = sealedPrivateKey
        self.sealedWith = sealedWith
        self.createdAt = createdAt
        self.activeFrom = activeFrom
        self.retiredAt = retiredAt
        self.revokedAt = revokedAt
        self.destroyedAt = destroyedAt
    }
}

/// A registered client: a service that introspects, revokes or follows the feed with a secret.
public struct OAuthClient: Sendable, Equatable {
    public var id: String
    public var name: String
    /// SHA-256 of the secret, hex (the secret is 256 random bits: a fast hash is enough, RFC 6819 §5.1.4.1.3).
    public var secretHash: String
    public var mayIntrospect: Bool
    public var mayRevoke: Bool
    public var mayFeed: Bool
    public var createdAt: Date
    public var removedAt: Date?

    /// What it may do, in words: `introspect`, `revoke`, `feed`.
    public var permissionNames: [String] {
        [self.mayIntrospect ? "introspect" : nil, self.mayRevoke ? "revoke" : nil, self.mayFeed ? "feed" : nil].compactMap { $0 }
    }

    public init(
        id: String, name: String, secretHash: String, mayIntrospect: Bool, mayRevoke: Bool, mayFeed: Bool, createdAt: Date, removedAt: Date? = nil
    ) {
        self.id = id
        self.name = name
        self.secretHash = secretHash
        self.mayIntrospect = mayIntrospect
        self.mayRevoke = mayRevoke
        self.mayFeed = mayFeed
        self.createdAt = createdAt
        self.removedAt = removedAt
    }
}

extension SQLAuthStore {
    // MARK: Signing keys

    public func signingKeys(algorithm: SigningAlgorithm) async throws -> [StoredSigningKey] {
        try await self.database.read { db in
            try await db.raw("SELECT * FROM signing_keys WHERE algorithm = \(bind: algorithm.rawValue) ORDER BY active_from, kid").all().map { try $0.signingKey() }
        }
    }

    /// Every key change runs with the keys locked (PostgreSQL: the table, against other instances and the CLI;
    /// SQLite: its write transaction holds the file), and checks again inside what it decided outside.
    static func lockKeys(on db: any SQLDatabase, flavor: SQLFlavor) async throws {
        if flavor == .postgres { try await db.raw("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").run() }
    }

    /// Adds a key if `condition` (given every stored key of its algorithm, read under the lock) says so; false when
    /// it did not.
    @discardableResult
    public func addSigningKey(
        _ key: StoredSigningKey, if condition: (@Sendable ([StoredSigningKey]) -> Bool)? = nil, audit: AuditRecord
    ) async throws -> Bool {
        let flavor = self.database.flavor
        return try await self.database.transaction { db in
            try await Self.lockKeys(on: db, flavor: flavor)
            if let condition {
                let rows = try await db.raw("SELECT * FROM signing_keys WHERE algorithm = \(bind: key.algorithm.rawValue)").all().map { try $0.signingKey() }
                guard condition(rows) else { return false }
            }
            try await Self.insertSigningKey(key, on: db)
            try await Self.insertAudit(audit, on: db)
            return true
        }
    }

    static func insertSigningKey(_ key: StoredSigningKey, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, sealed_with, created_at, active_from)
            VALUES (\(bind: key.kid), \(bind: key.algorithm.rawValue), \(bind: Base64URL.encode(key.publicKey)), \(bind: key.sealedPrivateKey),
                    \(bind: key.sealedWith), \(bind: Column.millis(key.createdAt)), \(bind: Column.millis(key.activeFrom)))
            """
        ).run()
    }

    /// Sets when a key stops signing (and, for a key not yet current, that it never will); `activate` makes another
    /// key current at the same moment. Refused (`KeyChangeError.notInService`) when either key was retired or revoked
    /// in the meantime.
    public func retireSigningKey(kid: String, at: Date, activate successor: String?, unretire: String? = nil, audit: AuditRecord) async throws {
        let flavor = self.database.flavor
        try await self.database.transaction { db in
            try await Self.lockKeys(on: db, flavor: flavor)
            let retired = try await db.raw(
                """
                UPDATE signing_keys SET retired_at = \(bind: Column.millis(at))
                WHERE kid = \(bind: kid) AND retired_at IS NULL AND revoked_at IS NULL RETURNING kid
                """
            ).all()
            guard !retired.isEmpty else { throw KeyChangeError.notInService(kid: kid, state: .retired) }
            if let successor {
                let activated = try await db.raw(
                    """
                    UPDATE signing_keys SET active_from = \(bind: Column.millis(at))
                    WHERE kid = \(bind: successor) AND retired_at IS NULL AND revoked_at IS NULL RETURNING kid
                    """
                ).all()
                guard !activated.isEmpty else { throw KeyChangeError.notInService(kid: successor, state: .revoked) }
            }
            if let unretire { try await Self.unretire(unretire, on: db) }
            try await Self.insertAudit(audit, on: db)
        }
    }

    /// Revokes a key: its row (when it is one of the stored keys) and a `key` row in the log, which every instance
    /// applies at once; `replacement` is a key made current at the same moment, when the revoked one was signing.
    public func revokeSigningKey(
        kid: String, at: Date, actorId: UUID?, reason: String?, replacement: StoredSigningKey?, unretire: String? = nil, audit: AuditRecord
    ) async throws -> RevocationEntry {
        defer { self.database.announceRevocations() }
        let flavor = self.database.flavor
        return try await self.database.transaction { db in
            try await Self.lockKeys(on: db, flavor: flavor)
            let stored = try await db.raw("SELECT revoked_at FROM signing_keys WHERE kid = \(bind: kid)").first()
            if let stored, try stored.decode(column: "revoked_at", as: Int64?.self) != nil {
                throw KeyChangeError.notInService(kid: kid, state: .revoked)
            }
            try await db.raw("UPDATE signing_keys SET revoked_at = \(bind: Column.millis(at)) WHERE kid = \(bind: kid) AND revoked_at IS NULL").run()
            if let replacement { try await Self.insertSigningKey(replacement, on: db) }
            if let unretire { try await Self.unretire(unretire, on: db) }
            let entry = try await Self.appendEntry(.key(kid: kid), cause: .keyRevoked, at: at, actorId: actorId, reason: reason, on: db)
            try await Self.insertAudit(audit, on: db)
            return entry
        }
    }

    /// Takes back a retirement that has not taken effect yet (the key it handed over to is being removed).
    static func unretire(_ kid: String, on db: any SQLDatabase) async throws {
        try await db.raw("UPDATE signing_keys SET retired_at = NULL WHERE kid = \(bind: kid) AND revoked_at IS NULL").run()
    }

    /// Seals a key's private half again (under a newer key-encryption key), if it is still sealed as it was read.
    public func resealSigningKey(kid: String, from oldSealed: String, to newSealed: String, with encryptionKeyId: String) async throws {
        try await self.database.statement { db in
            try await db.raw(
                """
                UPDATE signing_keys SET sealed_private_key = \(bind: newSealed), sealed_with = \(bind: encryptionKeyId)
                WHERE kid = \(bind: kid) AND sealed_private_key = \(bind: oldSealed)
                """
            ).run()
        }
    }

    /// Destroys the private halves of keys whose tokens have all expired (and of revoked keys): a leak of the
    /// database and a key-encryption key later cannot sign with them.
    public func destroySigningKeys(kids: [String], at: Date) async throws {
        guard !kids.isEmpty else { return }
        try await self.database.transaction { db in
            for kid in kids {
                try await db.raw(
                    """
                    UPDATE signing_keys SET sealed_private_key = NULL, sealed_with = NULL, destroyed_at = \(bind: Column.millis(at))
                    WHERE kid = \(bind: kid) AND destroyed_at IS NULL
                    """
                ).run()
            }
        }
    }

    // MARK: Clients

    public func addClient(_ client: OAuthClient, audit: AuditRecord) async throws {
        try await self.database.transaction { db in
            try await db.raw(
                """
                INSERT INTO oauth_clients (id, name, secret_hash, may_introspect, may_revoke, may_feed, created_at)
                VALUES (\(bind: client.id), \(bind: client.name), \(bind: client.secretHash), \(bind: client.mayIntrospect ? 1 : 0),
                        \(bind: client.mayRevoke ? 1 : 0), \(bind: client.mayFeed ? 1 : 0), \(bind: Column.millis(client.createdAt)))
                """
            ).run()
            try await Self.insertAudit(audit, on: db)
        }
    }

    /// The clients not removed, oldest first (a removed one's row stays, for the audit trail).
    public func liveClients() async throws -> [OAuthClient] {
        try await self.database.read { db in
            try await db.raw("SELECT * FROM oauth_clients WHERE removed_at IS NULL ORDER BY created_at, id").all().map { try $0.oauthClient() }
        }
    }

    /// Removes a client; false when there is no such live client.
    public func removeClient(id: String, at: Date, audit: AuditRecord) async throws -> Bool {
        try await self.database.transaction { db in
            let live = try await db.raw("SELECT id FROM oauth_clients WHERE id = \(bind: id) AND removed_at IS NULL").first()
            guard live != nil else { return false }
            try await db.raw("UPDATE oauth_clients SET removed_at = \(bind: Column.millis(at)) WHERE id = \(bind: id)").run()
            try await Self.insertAudit(audit, on: db)
            return true
        }
    }
}

extension SQLRow {
    func signingKey() throws -> StoredSigningKey {
        let name = try self.decode(column: "algorithm", as: String.self)
        guard let algorithm = SigningAlgorithm(rawValue: name) else { throw CorruptRow(description: "unknown key algorithm \(name)") }
        guard let publicKey = Base64URL.decode(Substring(try self.decode(column: "public_key", as: String.self))) else {
            throw CorruptRow(description: "signing_keys.public_key is not base64url")
        }
        return StoredSigningKey(
            kid: try self.decode(column: "kid", as: String.self),
            algorithm: algorithm,
            publicKey: Array(publicKey),
            sealedPrivateKey: try self.decode(column: "sealed_private_key", as: String?.self),
            sealedWith: try self.decode(column: "sealed_with", as: String?.self),
            createdAt: try self.date("created_at"),
            activeFrom: try self.date("active_from"),
            retiredAt: try self.optionalDate("retired_at"),
            revokedAt: try self.optionalDate("revoked_at"),
            destroyedAt: try self.optionalDate("destroyed_at")
        )
    }

    func oauthClient() throws -> OAuthClient {
        OAuthClient(
            id: try self.decode(column: "id", as: String.self),
            name: try self.decode(column: "name", as: String.self),
            secretHash: try self.decode(column: "secret_hash", as: String.self),
            mayIntrospect: try self.decode(column: "may_introspect", as: Int.self) != 0,
            mayRevoke: try self.decode(column: "may_revoke", as: Int.self) != 0,
            mayFeed: try self.decode(column: "may_feed", as: Int.self) != 0,
            createdAt: try self.date("created_at"),
            removedAt: try self.optionalDate("removed_at")
        )
    }
}
