import Foundation
import Synchronization
import TesseraTokens

/// What RFC 7662 introspection says of a token that is active.
public struct IntrospectedToken: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        /// A personal API token (`tsr_…`).
        case apiToken = "api_token"
    }

    public var kind: Kind
    public var userId: UUID
    public var sessionId: UUID
    /// The access token's `jti`; nil for a refresh token.
    public var jti: UUID?
    public var role: Role
    public var username: String
    public var issuedAt: Date
    public var expiresAt: Date
}

/// Token revocation (RFC 7009) and introspection (RFC 7662): the two questions other services ask about a token.
extension AuthService {
    /// Whether a token is active, and what it says. An access token is answered from memory (the verifier, the
    /// index, and the account's username, read once per account); a refresh token is looked up by its hash. A
    /// revoked, expired, malformed or unknown token is nil; a stale index throws rather than guess.
    public func introspect(token: String) async throws -> IntrospectedToken? {
        if Self.looksLikeJWT(token) {
            let verified: VerifiedAccessToken
            do {
                verified = try self.verifier.verify(token, now: self.clock.now())
            } catch {
                return nil
            }
            switch self.index.verdict(for: verified) {
            case .stale: throw AuthError.revocationIndexStale
            case .revoked: return nil
            case .accepted: break
            }
            guard let username = try await self.username(of: verified.userId) else { return nil }
            return IntrospectedToken(
                kind: .accessToken, userId: verified.userId, sessionId: verified.sessionId, jti: verified.jti, role: verified.role, username: username,
                issuedAt: verified.issuedAt, expiresAt: verified.expiresAt
            )
        }
        if token.hasPrefix(APIToken.prefix) {
            let caller: VerifiedAccessToken
            do {
                caller = try await self.authenticate(apiToken: token)
            } catch AuthError.revocationIndexStale {
                throw AuthError.revocationIndexStale
            } catch is AuthError {
                return nil
            }
            guard let username = try await self.username(of: caller.userId) else { return nil }
            return IntrospectedToken(
                kind: .apiToken, userId: caller.userId, sessionId: caller.sessionId, jti: caller.jti, role: caller.role, username: username,
                issuedAt: caller.issuedAt, expiresAt: caller.expiresAt
            )
        }
        guard OpaqueToken.isWellFormed(token) else { return nil }
        guard self.index.isCurrent() else { throw AuthError.revocationIndexStale }
        guard let grant = try await self.store.session(refreshTokenHash: OpaqueToken.hash(token), now: self.clock.now()), grant.user.isActive,
            self.index.isSessionAccepted(sessionId: grant.session.id, userId: grant.user.id, version: grant.session.tokenVersion, epoch: grant.session.epoch)
        else { return nil }
        return IntrospectedToken(
            kind: .refreshToken, userId: grant.user.id, sessionId: grant.session.id, jti: nil, role: grant.user.role, username: grant.user.email,
            issuedAt: grant.session.createdAt, expiresAt: grant.session.expiresAt
        )
    }

    /// Revokes a token as RFC 7009 asks: an access token by its `jti` until it expires (a `token` row in the log), a
    /// refresh token with its whole session. A token that is unknown, expired, already revoked or not ours is left
    /// alone without a word (the answer is the same 200 either way). `clientId` names the registered client that
    /// asked, nil when the holder of the token asked (possession is authority).
    public func revoke(token: String, clientId: String?, origin: RequestOrigin) async throws {
        let now = self.clock.now()
        var details = ["via": "rfc7009"]
        if let clientId { details["client"] = clientId }
        if Self.looksLikeJWT(token) {
            guard let verified = try? self.verifier.verify(token, now: now), !self.index.isRevoked(verified) else { return }
            details["jti"] = verified.jti.lowercasedString
            let audit = AuditRecord(
                at: now, event: .tokenRevoked, actorId: clientId == nil ? verified.userId : nil, subjectId: verified.userId, sessionId: verified.sessionId,
                origin: origin, details: details
            )
            _ = try await self.commit(
                RevocationRequest(
                    target: .token(verified.jti, until: verified.expiresAt.addingTimeInterval(self.settings.leeway.timeInterval)), cause: .tokenRevoked,
                    actorId: clientId == nil ? verified.userId : nil, reason: "rfc7009", at: now, audit: [audit]
                )
            )
            return
        }
        if token.hasPrefix(APIToken.prefix) {
            // Possession is authority here too: whoever holds an API token may take it back.
            guard APIToken.isWellFormed(token), let record = try await self.store.apiToken(hash: APIToken.hash(token)), record.invalidatedAt == nil else {
                return
            }
            do {
                try await self.revokeAPIToken(id: record.id, owner: nil, actorId: clientId == nil ? record.userId : nil, origin: origin)
            } catch AuthError.apiTokenNotFound {
                // Revoked meanwhile by someone else: the same 200.
            }
            return
        }
        guard OpaqueToken.isWellFormed(token), let grant = try await self.store.session(refreshTokenHash: OpaqueToken.hash(token), now: now) else { return }
        details["event"] = "logout"
        let audit = AuditRecord(
            at: now, event: .authLogout, actorId: clientId == nil ? grant.user.id : nil, subjectId: grant.user.id, sessionId: grant.session.id, origin: origin,
            details: details
        )
        _ = try await self.commit(
            RevocationRequest(
                target: .session(grant.session.id, until: self.settings.accessTokensIssued(before: now)), cause: .signOut,
                actorId: clientId == nil ? grant.user.id : nil, reason: "rfc7009", at: now, audit: [audit]
            )
        )
    }

    /// An access token is three base64url segments; a refresh token is one.
    static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.contains(UInt8(ascii: "."))
    }

    /// An account's username (its email), read from the database once and then remembered.
    func username(of userId: UUID) async throws -> String? {
        if let known = self.usernames.lookup(userId) { return known }
        guard let user = try await self.store.user(id: userId) else { return nil }
        self.usernames.remember(userId, user.email)
        return user.email
    }
}

/// Accounts' usernames, so that introspecting an access token costs no I/O once its account was seen. Bounded: when
/// full it starts again empty (a few reads more, never unbounded memory).
final class UsernameCache: Sendable {
    private let names = Mutex<[UUID: String]>([:])
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    func lookup(_ id: UUID) -> String? {
        self.names.withLock { $0[id] }
    }

    func remember(_ id: UUID, _ name: String) {
        self.names.withLock { names in
            if names.count >= self.capacity { names.removeAll(keepingCapacity: true) }
            names[id] = name
        }
    }
}
