import Foundation
import Testing

/// The web pages in a real headless Chromium: runs `Tests/Browser/test_pages.py` (Selenium driving Debian's
/// chromium and chromedriver, by path) against the real binary. `scripts/test` installs chromium and chromium-driver
/// and makes the Python environment it uses (`.build-venv`, or `TESSERA_BROWSER_PYTHON`); on a machine without them,
/// `swift test` alone skips this test and says why.
@Suite struct BrowserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let python = ProcessInfo.processInfo.environment["TESSERA_BROWSER_PYTHON"] ?? root.appendingPathComponent(".build-venv/bin/python").path
    static let toolsPresent = [python, "/usr/bin/chromium", "/usr/bin/chromedriver"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }

    // Skipped with this message, not failed, where Chromium, chromedriver or the venv are missing: `swift test` alone
    // is for quick runs; scripts/test (and so CI) installs them first.
    @Test(
        .timeLimit(.minutes(10)),
        .enabled(if: BrowserTests.toolsPresent, "needs /usr/bin/chromium, /usr/bin/chromedriver and .build-venv (or TESSERA_BROWSER_PYTHON): run scripts/test, which installs them")
    )
    func thePagesWorkInARealBrowser() throws {
        let root = Self.root
        let python = Self.python
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [root.appendingPathComponent("Tests/Browser/test_pages.py").path, "-v"]
        process.currentDirectoryURL = root
        var environment = ProcessInfo.processInfo.environment
        environment["TESSERA_BINARY"] = try TesseraBinary.locate().url.path
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(log)
        #expect(process.terminationStatus == 0, "browser tests failed:\n\(log.suffix(6000))")
    }
}
