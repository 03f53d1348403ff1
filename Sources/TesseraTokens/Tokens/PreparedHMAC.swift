import Crypto
import Foundation

/// HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once, when the key is loaded.
///
/// `HMAC<SHA256>` hashes both 64-byte pads again on every call: two SHA-256 blocks of the ten or so that
/// verifying an access token costs. Here each call starts from copies of the two prepared states. The result is
/// compared with swift-crypto's digest equality, which is constant-time.
struct PreparedHMAC: Sendable {
    private let inner: SHA256
    private let outer: SHA256

    init(key: SymmetricKey) {
        var block = key.withUnsafeBytes { Array($0) }
        if block.count > SHA256.blockByteCount { block = Array(SHA256.hash(data: block)) }
        block += [UInt8](repeating: 0, count: SHA256.blockByteCount - block.count)
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
    }

    /// The MAC of `message`.
    func authenticationCode(for message: UnsafeRawBufferPointer) -> SHA256Digest {
        var inner = self.inner
        inner.update(bufferPointer: message)
        let innerDigest = inner.finalize()
        var outer = self.outer
        innerDigest.withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }

    /// Whether `mac` is the MAC of `message`, compared in constant time.
    func isValid(_ mac: some DataProtocol, for message: UnsafeRawBufferPointer) -> Bool {
        mac.count == SHA256.byteCount && self.authenticationCode(for: message) == mac
    }
}
