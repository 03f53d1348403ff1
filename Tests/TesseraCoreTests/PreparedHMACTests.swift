import Crypto
import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// The verify path's HMAC must be HMAC-SHA256 exactly: checked against swift-crypto's for keys shorter than,
/// equal to and longer than a block, and messages of many lengths.
@Suite struct PreparedHMACTests {
    @Test(arguments: [32, 48, 64, 65, 200])
    func agreesWithSwiftCrypto(keyLength: Int) {
        var generator = SystemRandomNumberGenerator()
        let key = SymmetricKey(data: (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let prepared = PreparedHMAC(key: key)
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 450, 1000] {
            let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
            message.withUnsafeBytes { bytes in
                #expect(Array(prepared.authenticationCode(for: bytes)) == expected)
                #expect(prepared.isValid(expected, for: bytes))
                var wrong = expected
                wrong[Int.random(in: 0..<wrong.count)] ^= 0x01
                #expect(!prepared.isValid(wrong, for: bytes), "a MAC one bit off is refused")
                #expect(!prepared.isValid(Array(expected.prefix(31)), for: bytes), "a short MAC is refused")
            }
        }
    }
}
