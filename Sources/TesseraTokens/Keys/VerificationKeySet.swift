/// The keys a verifier accepts tokens from, all of one algorithm: the algorithm is pinned before any key is
/// consulted, so a token naming another is refused unread.
public struct VerificationKeySet: Sendable {
    /// The one algorithm accepted.
    public var algorithm: SigningAlgorithm
    /// Every key whose tokens may still be presented; few (the current, the next, those retiring).
    public var keys: [VerificationKey]

    /// A set of the keys of `algorithm` among `keys` (any other is left out).
    public init(algorithm: SigningAlgorithm, keys: [VerificationKey]) {
        self.algorithm = algorithm
        self.keys = keys.filter { $0.algorithm == algorithm }
    }

    /// The key named `kid`.
    public func key(kid: some StringProtocol) -> VerificationKey? {
        self.keys.first { $0.kid == kid }
    }
}

/// Where a verifier finds its keys: the server's key ring, or a guarded service's copy of the JWKS.
public protocol VerificationKeySource: Sendable {
    /// The keys now.
    var verificationKeys: VerificationKeySet { get }
    /// A token named a `kid` the set does not hold (perhaps a key that began signing a moment ago): read the keys
    /// again soon. Must be cheap and rate-limited, since anyone can send such a token.
    func reloadSoon()
}
