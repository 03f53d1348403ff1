import JWTKit
import TesseraTokens

/// jwt-kit signs the claims; it never verifies them (``AccessTokenVerifier`` does, against its own clock).
extension AccessTokenClaims: JWTPayload {
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}
