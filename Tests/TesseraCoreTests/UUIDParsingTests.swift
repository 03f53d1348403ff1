import Foundation
import Testing

@testable import TesseraCore
@testable import TesseraTokens

/// `UUID(parsing:)` replaces Foundation's parser on the verify path and the log read: it must accept and refuse
/// exactly what `UUID(uuidString:)` does for the canonical 36-character form.
@Suite struct UUIDParsingTests {
    @Test func parsesWhatFoundationParsesInEitherCase() {
        for _ in 0..<1000 {
            let uuid = UUID()
            #expect(UUID(parsing: uuid.uuidString) == uuid)
            #expect(UUID(parsing: uuid.uuidString.lowercased()) == uuid)
            #expect(UUID(parsing: Substring(uuid.uuidString)) == uuid)
        }
        #expect(UUID(parsing: "00000000-0000-0000-0000-000000000000") == UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
        #expect(UUID(parsing: "FFFFFFFF-ffff-FFFF-ffff-FFFFFFFFFFFF") == UUID(uuidString: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"))
    }

    @Test func writesTheLowerCaseFormFoundationWrites() {
        for _ in 0..<1000 {
            let uuid = UUID()
            #expect(uuid.lowercasedString == uuid.uuidString.lowercased())
        }
    }

    /// A claim that is not exactly a UUID must not become one: no truncation, no padding, no other separators.
    /// (Stricter than Foundation on Linux, whose `sscanf` skips a leading space and reads " 6ba7…430c" as a UUID.)
    @Test(arguments: [
        "", "0", "6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810-9dad-11d1-80b4-00c04fd430c88", "6ba7b810x9dad-11d1-80b4-00c04fd430c8",
        "6ba7b8109dad11d180b400c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430cg", " 6ba7b810-9dad-11d1-80b4-00c04fd430c",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c\u{0}", "6ba7b810-9dad-11d1-80b4-00c04fd430cé", "{6ba7b810-9dad-11d1-80b4-00c04fd430}",
        "6ba7b81-09dad-11d1-80b4-00c04fd430c8",
    ])
    func refusesAnythingElse(text: String) {
        #expect(UUID(parsing: text) == nil)
    }
}
