import Foundation
import TesseraCore

/// Where a signing key is in its life. Every instance works it out from the key's times and the clock, so that none
/// needs to be told when a key becomes current: a key is published (in the JWKS, not signing) from its creation,
/// current from `active_from` until the next key's `active_from` (or its own retirement), then retired (still in the
/// JWKS, verifying) until every token it signed has expired, then expired (gone from the JWKS, its private half
/// destroyed). A revoked key is refused at once, whatever its times say.
public enum KeyState: String, Sendable, Codable {
    case published
    case current
    case retired
    case expired
    case revoked

    /// Whether tokens signed with a key in this state are accepted, and the key is in the JWKS.
    public var verifies: Bool {
        switch self {
        case .published, .current, .retired: true
        case .expired, .revoked: false
        }
    }
}

/// A stored key with its state at one moment.
public struct KeyStatus: Sendable, Equatable {
    public var key: StoredSigningKey
    public var state: KeyState
    /// When it stops (or stopped) signing; nil while no later key is waiting and it is not retired.
    public var signsUntil: Date?
    /// When its last token expires (``signsUntil`` plus a token's lifetime); nil while it has no end.
    public var verifiesUntil: Date?
}

/// How keys succeed each other: the timing rules of the life cycle.
public struct KeySchedule: Sendable {
    /// How long a new key is published before it signs: at least the JWKS cache lifetime, plus the time every
    /// instance takes to read the keys again and some clock skew.
    public var publication: Duration
    /// How long a token may be presented after it was signed: the access-token lifetime plus the leeway.
    public var tokenLifetime: Duration
    /// How often a new key is rotated in (`TESSERA_KEY_ROTATION`); nil rotates only when told.
    public var rotation: Duration?
    /// `Cache-Control: max-age` of the JWKS: what other services may cache it for.
    public var jwksMaxAge: Duration

    public init(publication: Duration = .seconds(600), tokenLifetime: Duration, rotation: Duration? = nil, jwksMaxAge: Duration = .seconds(300)) {
        self.publication = publication
        self.tokenLifetime = tokenLifetime
        self.rotation = rotation
        self.jwksMaxAge = jwksMaxAge
    }

    /// The state of each key at `now`, in the order they sign (`active_from`, then `kid`).
    public func statuses(of keys: [StoredSigningKey], now: Date) -> [KeyStatus] {
        let ordered = keys.sorted { ($0.activeFrom, $0.kid) < ($1.activeFrom, $1.kid) }
        // A key retired or revoked before its turn came never signed, and does not end another key's turn; a key
        // revoked during its turn did end the turn of the key before it (and its replacement ends its own).
        let signing = ordered.filter { key in !Self.isWithdrawn(key) && !(key.revokedAt.map { $0 <= key.activeFrom } ?? false) }
        var ends: [String: Date] = [:]
        for (position, key) in signing.enumerated() {
            let next = signing.dropFirst(position + 1).first?.activeFrom
            switch (key.retiredAt, next) {
            case (let retired?, let next?): ends[key.kid] = min(retired, next)
            case (let retired?, nil): ends[key.kid] = retired
            case (nil, let next?): ends[key.kid] = next
            case (nil, nil): break
            }
        }
        let lifetime = self.tokenLifetime.timeInterval
        let statuses = ordered.map { key -> KeyStatus in
            let end = ends[key.kid]
            let verifiesUntil = end.map { $0.addingTimeInterval(lifetime) }
            let state: KeyState
            if key.revokedAt != nil {
                state = .revoked
            } else if Self.isWithdrawn(key) || key.destroyedAt != nil {
                state = .expired
            } else if key.activeFrom > now {
                state = .published
            } else if end.map({ now < $0 }) ?? true {
                state = .current
            } else if let verifiesUntil, now < verifiesUntil {
                state = .retired
            } else {
                state = .expired
            }
            return KeyStatus(key: key, state: state, signsUntil: end, verifiesUntil: verifiesUntil)
        }
        return Self.withCurrent(statuses)
    }

    /// When no key is current by this clock — a key made to sign at once (the first, or a revoked key's
    /// replacement) by an instance whose clock runs a little ahead — the next published key is: there must always
    /// be one that signs, and it is the one every other instance already signs with.
    static func withCurrent(_ statuses: [KeyStatus]) -> [KeyStatus] {
        guard !statuses.contains(where: { $0.state == .current }),
            let next = statuses.indices.filter({ statuses[$0].state == .published }).min(by: { statuses[$0].key.activeFrom < statuses[$1].key.activeFrom })
        else { return statuses }
        var adjusted = statuses
        adjusted[next].state = .current
        return adjusted
    }

    static func isWithdrawn(_ key: StoredSigningKey) -> Bool {
        key.retiredAt.map { $0 <= key.activeFrom } ?? false
    }
}
