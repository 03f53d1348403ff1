import Foundation
import TesseraTokens

/// "Why is this token refused?": the question support asks most, answered from the token itself, the instance's
/// index and the log rows and audit rows behind each cut. Reads only: explaining a spent refresh token does not
/// count as presenting it (nothing is revoked), and nothing is written, not even an audit row. The token is never
/// part of the answer.
extension AuthService {
    public func explain(token presented: String) async throws -> TokenExplanation {
        let token = presented.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, token.utf8.count <= AccessTokenVerifier.maximumTokenLength else {
            return TokenExplanation(tokenType: "unknown", reason: "not_a_token", detail: "This is not a token Tessera issues (empty or far too long).")
        }
        if token.hasPrefix(APIToken.prefix) { return try await self.explainAPIToken(token) }
        if token.utf8.contains(UInt8(ascii: ".")) { return try await self.explainAccessToken(token) }
        if OpaqueToken.isWellFormed(token) { return try await self.explainRefreshToken(token) }
        return TokenExplanation(
            tokenType: "unknown", reason: "not_a_token", detail: "This is neither an access token (a JWT) nor a refresh token Tessera issues."
        )
    }

    private func explainAccessToken(_ token: String) async throws -> TokenExplanation {
        let now = self.clock.now()
        let verified: VerifiedAccessToken
        do {
            verified = try self.verifier.verify(token, now: now)
        } catch {
            guard case .invalidToken(let why) = error else { throw error }
            let reason = TokenCheckCounters.invalidOutcomes[why] ?? "malformed"
            var explanation = TokenExplanation(tokenType: "access_token", reason: reason, detail: Self.refusalDetail(reason: reason, verifier: why))
            // Only once the signature held (the verifier checks times after it) are the times worth saying.
            if reason == "expired" || reason == "not_yet_valid" {
                let times = Self.unverifiedTimes(token)
                explanation.expiresAt = times.expiresAt
                explanation.issuedAt = times.issuedAt
                if reason == "expired", let expiresAt = times.expiresAt {
                    explanation.detail = "The token expired at \(Self.format(expiresAt)) (lifetime \(Int(self.settings.accessTokenTTL.timeInterval)) s); the client must refresh."
                }
            }
            return explanation
        }
        var explanation = TokenExplanation(tokenType: "access_token", reason: "accepted", detail: "")
        explanation.userId = verified.userId
        explanation.sessionId = verified.sessionId
        explanation.keyId = verified.keyId
        explanation.issuedAt = verified.issuedAt
        explanation.expiresAt = verified.expiresAt
        switch self.index.verdict(for: verified) {
        case .accepted:
            explanation.accepted = true
            explanation.detail = "The token is valid and no cut refuses it; it expires at \(Self.format(verified.expiresAt))."
        case .stale:
            explanation.reason = "index_stale"
            explanation.detail = "This instance has not read the revocation log within its bound: it refuses every token until it can (503)."
        case .revoked:
            let cuts = self.index.cuts(of: verified)
            explanation.reason = "revoked"
            explanation.cuts = try await self.explainCuts(
                cuts, jti: verified.jti, sessionId: verified.sessionId, userId: verified.userId, version: verified.version, epoch: verified.epoch,
                keyId: verified.keyId
            )
            explanation.detail = explanation.cuts.first?.detail ?? "The token is revoked."
        }
        return explanation
    }

    private func explainAPIToken(_ token: String) async throws -> TokenExplanation {
        var explanation = TokenExplanation(tokenType: "api_token", reason: "accepted", detail: "")
        guard APIToken.isWellFormed(token) else {
            explanation.reason = "malformed"
            explanation.detail = "Its checksum does not match: a typo, a cut-off copy, or a made-up token."
            return explanation
        }
        guard let record = try await self.store.apiToken(hash: APIToken.hash(token)) else {
            explanation.reason = "unknown_api_token"
            explanation.detail = "No API token with this secret was ever made here."
            return explanation
        }
        let caller = record.caller
        explanation.userId = record.userId
        explanation.issuedAt = record.createdAt
        explanation.expiresAt = record.expiresAt
        let now = self.clock.now()
        let cuts = self.index.cuts(of: caller)
        if !cuts.isEmpty {
            explanation.reason = "revoked"
            explanation.cuts = try await self.explainCuts(
                cuts, jti: caller.jti, sessionId: caller.sessionId, userId: caller.userId, version: caller.version, epoch: caller.epoch, keyId: nil
            )
            explanation.detail = explanation.cuts.first?.detail ?? "The API token is revoked."
        } else if record.expiresAt <= now {
            explanation.reason = "expired"
            explanation.detail = "The API token \"\(record.name)\" expired at \(Self.format(record.expiresAt))."
        } else if self.index.verdict(for: caller) == .stale {
            explanation.reason = "index_stale"
            explanation.detail = "This instance has not read the revocation log within its bound: it refuses every token until it can (503)."
        } else {
            explanation.accepted = true
            explanation.detail = "The API token \"\(record.name)\" is valid and no cut refuses it; it expires at \(Self.format(record.expiresAt))."
        }
        return explanation
    }

    private func explainRefreshToken(_ token: String) async throws -> TokenExplanation {
        let now = self.clock.now()
        var explanation = TokenExplanation(tokenType: "refresh_token", reason: "accepted", detail: "")
        guard let record = try await self.store.refreshTokenRecord(hash: OpaqueToken.hash(token)) else {
            explanation.reason = "unknown_refresh_token"
            explanation.detail = "No session holds this refresh token: it was never issued here, or its session was deleted after it expired."
            return explanation
        }
        explanation.userId = record.userId
        explanation.sessionId = record.sessionId
        explanation.expiresAt = record.expiresAt
        let cuts = self.index.cuts(jti: nil, sessionId: record.sessionId, userId: record.userId, version: record.tokenVersion, epoch: record.epoch, keyId: nil)
        if !cuts.isEmpty {
            explanation.reason = "revoked"
            explanation.cuts = try await self.explainCuts(
                cuts, jti: nil, sessionId: record.sessionId, userId: record.userId, version: record.tokenVersion, epoch: record.epoch, keyId: nil
            )
            explanation.detail = explanation.cuts.first?.detail ?? "The session is revoked."
        } else if let spentAt = record.spentAt {
            explanation.reason = "spent_refresh_token"
            explanation.spentAt = spentAt
            explanation.detail =
                "This refresh token was exchanged for a newer one at \(Self.format(spentAt)); presenting it again counts as theft and signs its session out."
        } else if record.expiresAt <= now {
            explanation.reason = "expired"
            explanation.detail = "The session expired at \(Self.format(record.expiresAt)); the user must sign in again."
        } else if let invalidatedAt = record.invalidatedAt {
            // Ended, though no cut is in the index any more (its row was pruned once nothing it cut could live).
            explanation.reason = "revoked"
            explanation.detail = "The session was ended at \(Self.format(invalidatedAt)) (\(record.invalidatedReason ?? "no reason stored"))."
        } else {
            explanation.accepted = true
            explanation.detail = "The refresh token is the session's current one; the session expires at \(Self.format(record.expiresAt))."
        }
        return explanation
    }

    /// Each cut with the log row that made it and the audit row written in the same transaction.
    private func explainCuts(
        _ cuts: [RevocationIndex.Cut], jti: UUID?, sessionId: UUID, userId: UUID, version: Int64, epoch: Int64, keyId: String?
    ) async throws -> [ExplainedCut] {
        var explained: [ExplainedCut] = []
        for cut in cuts {
            let target: RevocationHistoryTarget
            switch cut {
            case .token:
                guard let jti else { continue }
                target = .token(jti: jti)
            case .session: target = .session(id: sessionId)
            case .subject: target = .subject(userId: userId)
            case .global: target = .global
            case .key:
                guard let keyId else { continue }
                target = .key(kid: keyId)
            }
            let history = try await self.store.revocationHistory(of: target)
            guard let record = Self.effectiveCut(history, cut: cut, version: version, epoch: epoch) else { continue }
            explained.append(try await self.describe(record, cut: cut, userId: userId, sessionId: sessionId))
        }
        return explained
    }

    /// The row that cut it: for a token, session or key the last row of its target; for a user's or everyone's
    /// cut-off, the first row that raised it above the token's `ver` / `epoch` after the last one that let it in
    /// (an undo), so that the answer says when the token was first refused, not the latest of several cuts.
    static func effectiveCut(_ history: [RevocationRecord], cut: RevocationIndex.Cut, version: Int64, epoch: Int64) -> RevocationRecord? {
        switch cut {
        case .token, .session, .key:
            return history.last
        case .subject, .global:
            var found: RevocationRecord?
            for record in history {
                let value: Int64
                switch record.entry.kind {
                case .subject(_, let acceptedFrom): value = acceptedFrom - version
                case .global(let cutEpoch): value = cutEpoch - epoch
                default: continue
                }
                if value > 0 {
                    if found == nil { found = record }
                } else {
                    found = nil
                }
            }
            return found ?? history.last
        }
    }

    private func describe(_ record: RevocationRecord, cut: RevocationIndex.Cut, userId: UUID, sessionId: UUID) async throws -> ExplainedCut {
        let at = record.entry.revokedAt
        // The audit row shares the log row's transaction and its instant; of the rows of that millisecond, the one
        // about this user or session.
        let audits = try await self.store.auditEvents(AuditQuery(since: at, until: at.addingTimeInterval(0.0015), limit: 50))
        // The event the cause writes first (another request of the same user may share the millisecond), then
        // anything about this session or user.
        let expected = Self.auditEvents(of: record.cause)
        let aboutThis: (AuditRecord) -> Bool = { audit in
            switch cut {
            case .session: audit.sessionId == sessionId || audit.subjectId == userId
            case .token: audit.details["jti"] == record.entry.kind.targetId || audit.details["tokenId"] == record.entry.kind.targetId
            case .subject: audit.subjectId == userId || audit.subjectIds.contains(userId)
            case .global: true
            case .key: audit.details["kid"] == record.entry.kind.targetId
            }
        }
        let audit =
            audits.first { expected.contains($0.event) && aboutThis($0) }
            ?? audits.first { expected.contains($0.event) && (cut == .global || cut == .key) }
            ?? audits.first(where: aboutThis)
        let actorId = record.entry.actorId ?? audit?.actorId
        let actorEmail = try await actorId.asyncMap { try await self.store.user(id: $0)?.email }
        let reason = record.entry.reason ?? audit?.details["reason"]
        var detail = "\(Self.cutDescription(cut, cause: record.cause)) at \(Self.format(at))"
        if let actorEmail { detail += " by \(actorEmail)" } else if actorId == nil { detail += " (no signed-in actor: the CLI or the system)" }
        if let ip = audit?.ip { detail += " from \(ip)" }
        if let reason, !reason.isEmpty { detail += ": \(reason)" }
        detail += "."
        return ExplainedCut(
            kind: cut.rawValue, cause: record.cause.rawValue, at: at, seq: record.entry.seq, actorId: actorId, actorEmail: actorEmail, reason: reason,
            ip: audit?.ip, userAgent: audit?.userAgent, auditId: audit?.id, auditEvent: audit?.event.rawValue, detail: detail
        )
    }

    /// The audit events a cut of this cause writes in its transaction.
    static func auditEvents(of cause: RevocationCause) -> Set<AuditEventName> {
        switch cause {
        case .signOut, .signOutEverywhere, .signOutOthers: [.authLogout]
        case .passwordChanged, .passwordReset: [.passwordChanged]
        case .deactivated: [.accountDeactivated]
        case .adminRevoke: [.revokeUsers]
        case .revokeAll: [.revokeAll]
        case .refreshTokenReuse: [.tokenReuseDetected]
        case .tokenRevoked: [.tokenRevoked, .apiTokenRevoked]
        case .keyRevoked: [.keyRevoked]
        case .roleChanged: [.roleChanged]
        case .accountDeleted: [.accountDeleted]
        case .unrevoke: [.unrevoke]
        case .unknown: []
        }
    }

    static func cutDescription(_ cut: RevocationIndex.Cut, cause: RevocationCause) -> String {
        switch (cut, cause) {
        case (.session, .signOut): "This session was signed out"
        case (.session, .refreshTokenReuse): "This session was ended because a spent refresh token was presented again (possible theft)"
        case (.session, _): "This session was ended (\(cause.rawValue))"
        case (.token, _): "This access token was revoked (\(cause.rawValue))"
        case (.subject, .passwordChanged): "Every token of this user was cut when the password was changed"
        case (.subject, .passwordReset): "Every token of this user was cut when the password was reset"
        case (.subject, .signOutEverywhere): "Every token of this user was cut by \"sign out of all devices\""
        case (.subject, .signOutOthers): "Every other session of this user was cut by \"sign out of other devices\""
        case (.subject, .deactivated): "Every token of this user was cut when the account was deactivated"
        case (.subject, .adminRevoke): "Every token of this user was revoked by an administrator"
        case (.subject, .roleChanged): "Every token of this user was cut when the account's role changed"
        case (.subject, .accountDeleted): "Every token of this user was cut when the account was deleted"
        case (.subject, _): "Every token of this user was cut (\(cause.rawValue))"
        case (.global, _): "Everyone's tokens were cut (revoke-all)"
        case (.key, _): "The key that signed this token was revoked"
        }
    }

    static func refusalDetail(reason: String, verifier: String) -> String {
        switch reason {
        case "bad_signature": "The signature does not match: the token was altered, or signed by someone else."
        case "unknown_key": "It names a signing key this server does not have (never had, or retired long ago)."
        case "algorithm_not_allowed": "It is signed with an algorithm this server does not accept."
        case "wrong_issuer": "It was issued by another issuer."
        case "wrong_audience": "It is meant for another audience."
        case "wrong_type": "It is not an access token."
        case "not_yet_valid": "It is not valid yet (issued in the future, or clocks disagree)."
        case "expired": "The token expired."
        default: "It is not a well-formed access token (\(verifier))."
        }
    }

    /// `exp` and `iat` read from a token whose signature the verifier already accepted.
    static func unverifiedTimes(_ token: String) -> (issuedAt: Date?, expiresAt: Date?) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64URL.decode(parts[1]),
            let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any]
        else { return (nil, nil) }
        func date(_ key: String) -> Date? { (object[key] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue) } }
        return (date("iat"), date("exp"))
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

extension RevocationKind {
    /// The id a row is about, as audit details write it (lower case), or the key's id.
    fileprivate var targetId: String? {
        switch self {
        case .token(let jti, _): jti.lowercasedString
        case .session(let id, _): id.lowercasedString
        case .subject(let userId, _): userId.lowercasedString
        case .global: nil
        case .key(let kid): kid
        }
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T?) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
