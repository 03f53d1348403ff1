import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The real `tessera` binary, started as a separate process the way a user runs it.
struct TesseraBinary {
    let url: URL

    /// Finds the binary SwiftPM built beside the test bundle (the test target depends on it), or `TESSERA_BINARY`.
    static func locate() throws -> TesseraBinary {
        var candidates: [URL] = []
        if let explicit = ProcessInfo.processInfo.environment["TESSERA_BINARY"] { candidates.append(URL(fileURLWithPath: explicit)) }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("tessera"))
            directory = directory.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/tessera"))
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestFailure("no tessera binary in \(candidates.map(\.path)); run `swift build` first or set TESSERA_BINARY")
        }
        return TesseraBinary(url: found)
    }

    /// Runs a one-shot command with no terminal on stdin; returns its exit status, stdout and stderr.
    func run(_ arguments: [String], environment: [String: String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = self.url
        process.arguments = arguments
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdin {
            let input = Pipe()
            process.standardInput = input
            try process.run()
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        } else {
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }
}

/// A `tessera serve` process on a free loopback port.
final class ServerProcess {
    let process = Process()
    let logFile: URL
    private(set) var port = 0

    init(binary: TesseraBinary, environment: [String: String], logFile: URL) throws {
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        self.process.executableURL = binary.url
        self.process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0"]
        self.process.environment = environment
        self.process.standardInput = FileHandle.nullDevice
        self.process.standardOutput = try FileHandle(forWritingTo: logFile)
        self.process.standardError = try FileHandle(forWritingTo: logFile)
        try self.process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
            if let range = log.range(of: "listening on 127.0.0.1:") {
                let digits = log[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), port > 0 {
                    self.port = port
                    return
                }
            }
            guard self.process.isRunning else { throw TestFailure("tessera serve exited: \(log)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        self.process.terminate()
        throw TestFailure("tessera serve did not start within 30 s")
    }

    /// `kill -9`: no graceful shutdown, nothing flushed that was not already committed.
    func kill() {
        Foundation.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    func stop() {
        if self.process.isRunning {
            self.process.terminate()
            self.process.waitUntilExit()
        }
    }

    deinit { self.stop() }

    /// One HTTP request to this server; returns status and parsed JSON (if any).
    func request(_ method: String, _ path: String, json: [String: Any]? = nil, token: String? = nil) async throws -> (status: Int, body: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(self.port)\(path)")!)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, body)
    }

    /// Signs in and returns the access token.
    func login(_ email: String, _ password: String) async throws -> String {
        let (status, body) = try await self.request("POST", "/api/auth/login", json: ["email": email, "password": password])
        guard status == 200, let token = body["accessToken"] as? String else { throw TestFailure("login answered \(status) \(body)") }
        return token
    }
}
