import Metrics
import TesseraTokens

/// What the service counts, through swift-metrics: the process chooses the backend (Prometheus in `tessera serve`);
/// with none chosen every call is a no-op. The handles are made once, when the service is built (after the backend
/// is chosen), so that counting a request costs one atomic add and never a look-up by name. docs/OPERATIONS.md lists
/// every metric; the names carry their unit and `_total` as Prometheus expects.
public struct ServiceMetrics: Sendable {
    /// Access-token checks by outcome.
    public let tokenChecks: TokenCheckCounters
    /// Sign-ins by outcome: `ok`, `bad_password`, `throttled`, `inactive`, `busy`.
    let signIns: [SignInOutcome: Counter]
    /// Rows written to the revocation log by this instance, by kind.
    let revocations: [RevocationIndex.Cut: Counter]

    public init() {
        self.tokenChecks = TokenCheckCounters()
        self.signIns = Dictionary(
            uniqueKeysWithValues: SignInOutcome.allCases.map { ($0, Counter(label: "tessera_sign_ins_total", dimensions: [("outcome", $0.rawValue)])) }
        )
        self.revocations = Dictionary(
            uniqueKeysWithValues: RevocationIndex.Cut.allCases.map {
                ($0, Counter(label: "tessera_revocations_total", dimensions: [("kind", $0.rawValue)]))
            }
        )
    }

    enum SignInOutcome: String, CaseIterable {
        case ok
        /// Unknown email or wrong password (never told apart, here either).
        case badPassword = "bad_password"
        case throttled
        case inactive
        /// Refused because the password-hash queue was full.
        case busy
    }

    func countSignIn(_ outcome: SignInOutcome) {
        self.signIns[outcome]?.increment()
    }

    /// Counts rows this instance wrote to the log (not rows read from other instances).
    func countRevocations(_ entries: some Sequence<RevocationEntry>) {
        for entry in entries {
            self.revocations[entry.kind.cut]?.increment()
        }
    }
}

/// Access-token checks by outcome. `accepted` is counted on every authenticated request: a handle of its own, no
/// look-up. Refusals are rarer and looked up by cause.
public struct TokenCheckCounters: Sendable {
    let accepted: Counter
    let stale: Counter
    let revoked: [RevocationIndex.Cut: Counter]
    let invalid: [String: Counter]
    let otherInvalid: Counter

    static let label = "tessera_token_checks_total"

    /// The verifier's reasons that get an outcome of their own; any other is `malformed`.
    static let invalidOutcomes: [String: String] = [
        "expired": "expired", "bad signature": "bad_signature", "unknown key": "unknown_key", "wrong issuer": "wrong_issuer",
        "wrong audience": "wrong_audience", "algorithm not allowed": "algorithm_not_allowed", "not yet valid": "not_yet_valid",
        "issued in the future": "not_yet_valid", "not an access token": "wrong_type",
    ]

    init() {
        func counter(_ outcome: String) -> Counter { Counter(label: Self.label, dimensions: [("outcome", outcome)]) }
        self.accepted = counter("accepted")
        self.stale = counter("stale")
        self.revoked = Dictionary(uniqueKeysWithValues: RevocationIndex.Cut.allCases.map { ($0, counter("revoked_\($0.rawValue)")) })
        var invalid: [String: Counter] = [:]
        var byOutcome: [String: Counter] = [:]
        for (reason, outcome) in Self.invalidOutcomes {
            let made = byOutcome[outcome] ?? counter(outcome)
            byOutcome[outcome] = made
            invalid[reason] = made
        }
        self.invalid = invalid
        self.otherInvalid = counter("malformed")
    }

    func countAccepted() {
        self.accepted.increment()
    }

    func countStale() {
        self.stale.increment()
    }

    func countRevoked(by cut: RevocationIndex.Cut?) {
        (cut.flatMap { self.revoked[$0] } ?? self.revoked[.token])?.increment()
    }

    func countInvalid(reason: String) {
        (self.invalid[reason] ?? self.otherInvalid).increment()
    }
}

extension RevocationKind {
    /// The cut a log row makes.
    public var cut: RevocationIndex.Cut {
        switch self {
        case .token: .token
        case .session: .session
        case .subject: .subject
        case .global: .global
        case .key: .key
        }
    }
}
