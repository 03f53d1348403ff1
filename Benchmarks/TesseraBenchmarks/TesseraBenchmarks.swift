import Benchmark
import Foundation
import Logging
import TesseraCore
@_spi(Testing) import TesseraGuard
import TesseraStore

#if canImport(Glibc)
import Glibc
#endif

/// Fixtures built once per process, outside the measured region.
actor Fixtures {
    static let shared = Fixtures()
    let settings = TokenSettings()
    let now = Date()
    private var key: SigningKey?
    private var tokens: [String] = []
    private var asymmetricKeys: [SigningAlgorithm: SigningKey] = [:]
    private var asymmetricTokens: [SigningAlgorithm: [String]] = [:]
    private var indexes: [Int: RevocationIndex] = [:]

    private var services: [UInt8: AuthService] = [:]

    /// An account service on a temporary SQLite file with one account, `b@x.org`.
    func service(bcryptCost: UInt8) async throws -> AuthService {
        if let service = self.services[bcryptCost] { return service }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bench-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let store = try await StoreFactory.open(.sqlite(path: directory.appendingPathComponent("b.sqlite").path), logger: logger)
        let auth = try await AuthService(
            store: store, index: RevocationIndex(stalenessBound: .seconds(86_400)), hasher: BcryptPasswordHasher(cost: bcryptCost),
            key: try await self.signingKey(), settings: TokenSettings(), logger: logger
        )
        auth.index.markSynced()
        _ = try await auth.register(email: "b@x.org", password: "correct horse", origin: RequestOrigin())
        self.services[bcryptCost] = auth
        return auth
    }

    func signingKey() async throws -> SigningKey {
        if let key { return key }
        let key = try await SigningKey(secret: String(repeating: "b", count: 48))
        self.key = key
        return key
    }

    /// A key pair of an asymmetric algorithm, made once.
    func signingKey(_ algorithm: SigningAlgorithm) async throws -> SigningKey {
        if algorithm == .hs256 { return try await self.signingKey() }
        if let key = self.asymmetricKeys[algorithm] { return key }
        let pair = SigningKey.generatePair(algorithm)!
        let key = try await SigningKey.asymmetric(algorithm, publicKey: pair.publicKey, privateKey: pair.privateKey)
        self.asymmetricKeys[algorithm] = key
        return key
    }

    /// 4,096 distinct tokens of an algorithm, as the server issues them.
    func distinctTokens(_ algorithm: SigningAlgorithm) async throws -> [String] {
        if algorithm == .hs256 { return try await self.distinctTokens() }
        if let tokens = self.asymmetricTokens[algorithm] { return tokens }
        let signer = AccessTokenSigner(key: try await self.signingKey(algorithm), settings: self.settings)
        var tokens: [String] = []
        for _ in 0..<4096 {
            let user = User(id: UUID(), email: "u@x.org", role: .user, isActive: true, createdAt: self.now)
            let session = Session(
                id: UUID(), userId: user.id, createdAt: self.now, lastSeenAt: self.now, expiresAt: self.now, ip: nil, userAgent: nil,
                deviceName: nil, terminalId: nil, tokenVersion: 3, epoch: 1
            )
            tokens.append(try await signer.sign(user: user, session: session, now: self.now).token)
        }
        self.asymmetricTokens[algorithm] = tokens
        return tokens
    }

    /// 4,096 distinct tokens as the server issues them.
    func distinctTokens() async throws -> [String] {
        if !self.tokens.isEmpty { return self.tokens }
        let signer = AccessTokenSigner(key: try await self.signingKey(), settings: self.settings)
        for _ in 0..<4096 {
            let user = User(id: UUID(), email: "u@x.org", role: .user, isActive: true, createdAt: self.now)
            let session = Session(
                id: UUID(), userId: user.id, createdAt: self.now, lastSeenAt: self.now, expiresAt: self.now, ip: nil, userAgent: nil,
                deviceName: nil, terminalId: nil, tokenVersion: 3, epoch: 1
            )
            self.tokens.append(try await signer.sign(user: user, session: session, now: self.now).token)
        }
        return self.tokens
    }

    /// An index holding `count` revoked tokens and sessions (half each) and a cutoff for every 100th user.
    func index(revoked count: Int) -> RevocationIndex {
        if let index = self.indexes[count] { return index }
        let index = RevocationIndex(stalenessBound: .seconds(3600))
        index.apply(Self.rows(count, now: self.now), now: self.now)
        index.markSynced()
        self.indexes[count] = index
        return index
    }

    static func rows(_ count: Int, now: Date) -> [RevocationEntry] {
        let until = now.addingTimeInterval(3600)
        var random = SplitMix64(seed: UInt64(count))
        return (0..<count).map { seq in
            let id = random.uuid()
            let kind: RevocationKind =
                switch seq % 100 {
                case 0: .subject(userId: id, acceptedFromVersion: 2)
                case let n where n % 2 == 0: .token(jti: id, until: until)
                default: .session(id: id, until: until)
                }
            return RevocationEntry(seq: Int64(seq + 1), kind: kind, revokedAt: now, actorId: nil, reason: nil)
        }
    }
}

/// A fast deterministic generator: `UUID()` reads the system's random source once per id, which made building
/// ten million fixture rows take minutes.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { self.state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uuid() -> UUID {
        let a = self.next(), b = self.next()
        return withUnsafeBytes(of: (a, b)) { raw in
            let bytes = Array(raw)
            return UUID(uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
        }
    }
}

/// The process's resident memory in bytes (Linux `/proc/self/statm`), for memory per revoked entry.
func heapBytesInUse() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

let benchmarks: @Sendable () -> Void = {
    routerBenchmarks()
    let fast: [BenchmarkMetric] = [.wallClock, .mallocCountTotal, .throughput]
    Benchmark.defaultConfiguration = .init(metrics: fast, timeUnits: .nanoseconds, warmupIterations: 100, maxDuration: .seconds(3), maxIterations: 1_000_000)

    Benchmark("verify: token seen before (cache hit)") { benchmark in
        let tokens = try await Fixtures.shared.distinctTokens()
        let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(), settings: TokenSettings())
        let now = Date()
        _ = try verifier.verify(tokens[0], now: now)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try verifier.verify(tokens[0], now: now)) }
    }

    Benchmark("verify: new token (HMAC + claims parse)") { benchmark in
        let tokens = try await Fixtures.shared.distinctTokens()
        let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(), settings: TokenSettings(), cacheCapacity: 0)
        let now = Date()
        var next = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try verifier.verify(tokens[next & 4095], now: now))
            next &+= 1
        }
    }

    for algorithm in [SigningAlgorithm.edDSA, .es256] {
        Benchmark("verify: token seen before (cache hit, 1,000 per sample), \(algorithm.rawValue)", configuration: .init(metrics: fast, timeUnits: .nanoseconds, scalingFactor: .kilo)) { benchmark in
            let tokens = try await Fixtures.shared.distinctTokens(algorithm)
            let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(algorithm), settings: TokenSettings())
            let now = Date()
            _ = try verifier.verify(tokens[0], now: now)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try verifier.verify(tokens[0], now: now)) }
        }

        Benchmark("verify: token seen before (cache hit), \(algorithm.rawValue)") { benchmark in
            let tokens = try await Fixtures.shared.distinctTokens(algorithm)
            let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(algorithm), settings: TokenSettings())
            let now = Date()
            _ = try verifier.verify(tokens[0], now: now)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try verifier.verify(tokens[0], now: now)) }
        }

        Benchmark("verify: new token (\(algorithm.rawValue) signature + claims parse)") { benchmark in
            let tokens = try await Fixtures.shared.distinctTokens(algorithm)
            let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(algorithm), settings: TokenSettings(), cacheCapacity: 0)
            let now = Date()
            var next = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try verifier.verify(tokens[next & 4095], now: now))
                next &+= 1
            }
        }

    }

    for algorithm in [SigningAlgorithm.edDSA, .es256] {
        // What a guarded service pays per request (issue 13: at most 1 µs, no allocation): verify from the cache and
        // one look at the index it follows.
        Benchmark("guard: check a token seen before, \(algorithm.rawValue)", configuration: .init(metrics: fast, timeUnits: .nanoseconds, scalingFactor: .kilo)) { benchmark in
            let tokens = try await Fixtures.shared.distinctTokens(algorithm)
            let tesseraGuard = TesseraGuard(
                configuration: TesseraGuardConfiguration(
                    tesseraURL: "http://127.0.0.1:9", issuer: "tessera", audience: "tessera", clientId: "tc_bench", clientSecret: "tcs_bench",
                    stalenessBound: .seconds(3600)
                )
            )
            try tesseraGuard.install(keys: [try await Fixtures.shared.signingKey(algorithm).verification], algorithm: algorithm)
            tesseraGuard.index.markSynced()
            guard case .accepted = tesseraGuard.check(bearer: tokens[0]) else { fatalError("the guard refused the fixture token") }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(tesseraGuard.check(bearer: tokens[0])) }
        }

        Benchmark("guard: index verdict alone (freshness + revocation), \(algorithm.rawValue)", configuration: .init(metrics: fast, timeUnits: .nanoseconds, scalingFactor: .kilo)) { benchmark in
            let tokens = try await Fixtures.shared.distinctTokens(algorithm)
            let tesseraGuard = TesseraGuard(
                configuration: TesseraGuardConfiguration(
                    tesseraURL: "http://127.0.0.1:9", issuer: "tessera", audience: "tessera", clientId: "tc_bench", clientSecret: "tcs_bench",
                    stalenessBound: .seconds(3600)
                )
            )
            try tesseraGuard.install(keys: [try await Fixtures.shared.signingKey(algorithm).verification], algorithm: algorithm)
            tesseraGuard.index.markSynced()
            guard case .accepted(let verified) = tesseraGuard.check(bearer: tokens[0]) else { fatalError("the guard refused the fixture token") }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(tesseraGuard.index.verdict(for: verified)) }
        }
    }

    for algorithm in SigningAlgorithm.allCases {
        Benchmark("sign: access token, \(algorithm.rawValue)", configuration: .init(metrics: fast, timeUnits: .microseconds, maxDuration: .seconds(3))) { benchmark in
            let signer = AccessTokenSigner(key: try await Fixtures.shared.signingKey(algorithm), settings: TokenSettings())
            let now = Date()
            let user = User(id: UUID(), email: "u@x.org", role: .user, isActive: true, createdAt: now)
            let session = Session(
                id: UUID(), userId: user.id, createdAt: now, lastSeenAt: now, expiresAt: now, ip: nil, userAgent: nil, deviceName: nil,
                terminalId: nil, tokenVersion: 3, epoch: 1
            )
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try await signer.sign(user: user, session: session, now: now)) }
        }
    }

    Benchmark("verify + revocation check, 1M revoked, token seen before") { benchmark in
        let tokens = try await Fixtures.shared.distinctTokens()
        let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(), settings: TokenSettings())
        let index = await Fixtures.shared.index(revoked: 1_000_000)
        let now = Date()
        _ = try verifier.verify(tokens[1], now: now)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let token = try verifier.verify(tokens[1], now: now)
            blackHole(index.isRevoked(token))
        }
    }

    Benchmark("verify + revocation check, 1M revoked, new token") { benchmark in
        let tokens = try await Fixtures.shared.distinctTokens()
        let verifier = AccessTokenVerifier(key: try await Fixtures.shared.signingKey(), settings: TokenSettings(), cacheCapacity: 0)
        let index = await Fixtures.shared.index(revoked: 1_000_000)
        let now = Date()
        var next = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let token = try verifier.verify(tokens[next & 4095], now: now)
            blackHole(index.isRevoked(token))
            next &+= 1
        }
    }

    for count in [0, 10_000, 1_000_000, 10_000_000] {
        Benchmark("revocation check alone, \(count) revoked", configuration: .init(metrics: fast, timeUnits: .nanoseconds, scalingFactor: .kilo)) { benchmark in
            let index = await Fixtures.shared.index(revoked: count)
            let probe = VerifiedAccessToken(
                userId: UUID(), sessionId: UUID(), jti: UUID(), role: .user, version: 3, epoch: 1, issuedAt: Date(), expiresAt: Date()
            )
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(index.isRevoked(probe)) }
        }
    }

    Benchmark("apply 1,000 log rows to the index", configuration: .init(metrics: fast, timeUnits: .microseconds, maxDuration: .seconds(3))) { benchmark in
        let rows = Fixtures.rows(1000, now: Date())
        let index = RevocationIndex()
        benchmark.startMeasurement()
        index.apply(rows)
        benchmark.stopMeasurement()
        blackHole(index)
    }

    Benchmark(
        "build the index from 1M log rows",
        configuration: .init(metrics: [.wallClock, .peakMemoryResident], timeUnits: .milliseconds, maxDuration: .seconds(20), maxIterations: 5)
    ) { benchmark in
        let rows = Fixtures.rows(1_000_000, now: Date())
        let index = RevocationIndex()
        benchmark.startMeasurement()
        index.applyFromLog(rows, throughSeq: Int64(rows.count))
        benchmark.stopMeasurement()
        blackHole(index)
    }

    let bytesPerEntry = BenchmarkMetric.custom("resident bytes per revoked entry", polarity: .prefersSmaller, useScalingFactor: false)
    Benchmark("memory per revoked token or session entry at 1M", configuration: .init(metrics: [bytesPerEntry], maxIterations: 3)) { benchmark in
        let until = Date().addingTimeInterval(3600)
        var random = SplitMix64(seed: 42)
        let rows = (0..<1_000_000).map { seq in
            RevocationEntry(
                seq: Int64(seq + 1), kind: seq % 2 == 0 ? .token(jti: random.uuid(), until: until) : .session(id: random.uuid(), until: until),
                revokedAt: Date(), actorId: nil, reason: nil
            )
        }
        let before = heapBytesInUse()
        let index = RevocationIndex()
        index.apply(rows)
        let after = heapBytesInUse()
        blackHole(index)
        benchmark.measurement(bytesPerEntry, (after - before) / rows.count)
    }

    // The write path and the bcrypt-bound sign-in, on a real SQLite file (WAL, synchronous=FULL).
    let writes: Benchmark.Configuration = .init(metrics: [.wallClock, .throughput], timeUnits: .microseconds, maxDuration: .seconds(5), maxIterations: 2000)
    Benchmark("sign-in on SQLite (bcrypt cost 10)", configuration: .init(metrics: [.wallClock], timeUnits: .milliseconds, maxIterations: 30)) { benchmark in
        let auth = try await Fixtures.shared.service(bcryptCost: 10)
        benchmark.startMeasurement()
        blackHole(try await auth.login(email: "b@x.org", password: "correct horse", origin: RequestOrigin()))
    }

    Benchmark("refresh on SQLite (rotation, one transaction)", configuration: writes) { benchmark in
        let auth = try await Fixtures.shared.service(bcryptCost: 4)
        let pair = try await auth.login(email: "b@x.org", password: "correct horse", origin: RequestOrigin())
        benchmark.startMeasurement()
        blackHole(try await auth.refresh(refreshToken: pair.refreshToken, origin: RequestOrigin()))
    }

    Benchmark("64 concurrent logouts on SQLite (group commit; time for all 64)", configuration: writes) { benchmark in
        let auth = try await Fixtures.shared.service(bcryptCost: 4)
        var callers: [VerifiedAccessToken] = []
        for _ in 0..<64 {
            let pair = try await auth.login(email: "b@x.org", password: "correct horse", origin: RequestOrigin())
            callers.append(try auth.authenticate(accessToken: pair.accessToken))
        }
        benchmark.startMeasurement()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in callers { group.addTask { try await auth.logout(caller, origin: RequestOrigin()) } }
            try await group.waitForAll()
        }
    }

    Benchmark("logout on SQLite (durable revocation, one transaction)", configuration: writes) { benchmark in
        let auth = try await Fixtures.shared.service(bcryptCost: 4)
        let pair = try await auth.login(email: "b@x.org", password: "correct horse", origin: RequestOrigin())
        let caller = try auth.authenticate(accessToken: pair.accessToken)
        benchmark.startMeasurement()
        try await auth.logout(caller, origin: RequestOrigin())
    }
}
