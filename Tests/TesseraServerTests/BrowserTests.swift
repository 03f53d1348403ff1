import Foundation
import Testing

/// The web pages in a real headless Chromium: runs `Tests/Browser/test_pages.py` (Selenium driving Debian's
/// chromium and chromedriver, by path) against the real binary. `scripts/prepare-browser-tests` makes the Python
/// environment it uses (`.build-venv`, or `TESSERA_BROWSER_PYTHON`); without it this test fails and says so.
@Suite struct BrowserTests {
    @Test(.timeLimit(.minutes(10)))
    func thePagesWorkInARealBrowser() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = ProcessInfo.processInfo.environment["TESSERA_BROWSER_PYTHON"] ?? root.appendingPathComponent(".build-venv/bin/python").path
        for tool in [python, "/usr/bin/chromium", "/usr/bin/chromedriver"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw TestFailure("\(tool) is missing: run scripts/prepare-browser-tests (needs apt-get install -y chromium chromium-driver)")
        }
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
