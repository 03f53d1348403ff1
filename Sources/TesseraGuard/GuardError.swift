/// Why the guard could not follow Tessera (logged; checks fail closed meanwhile).
enum GuardError: Error, CustomStringConvertible {
    case noAlgorithm(found: [String])
    case noUsableKeys(algorithm: String)
    case status(Int, path: String)
    case cursorGone

    var description: String {
        switch self {
        case .noAlgorithm(let found):
            "the JWKS does not name exactly one algorithm (found \(found)); Tessera must sign with EdDSA or ES256 for other services"
        case .noUsableKeys(let algorithm): "the JWKS holds no usable \(algorithm) key: keeping the keys read before"
        case .status(let status, let path): "\(path) answered \(status)"
        case .cursorGone: "the cursor is gone: taking a snapshot"
        }
    }
}
