import NIOPosix
import Testing

@testable import TesseraCore

@Suite struct BoundedPasswordHasherTests {
    /// Attack (or storm) stopped: thousands of sign-ins queueing for bcrypt, each waiting longer than any client does.
    /// Beyond the bound, a sign-in is refused at once with `busy` instead.
    @Test func hashesBeyondTheBoundAreRefusedAtOnce() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let hasher = BoundedPasswordHasher(base: BcryptPasswordHasher(cost: 10, threadPool: pool), capacity: 2)
        let hash = try await hasher.hash("correct horse")
        let outcomes = await withTaskGroup(of: Result<Bool, any Error>.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let started = ContinuousClock.now
                    do {
                        return .success(try await hasher.verify("correct horse", against: hash))
                    } catch {
                        #expect(started.duration(to: .now) < .milliseconds(50), "a refusal must not wait")
                        return .failure(error)
                    }
                }
            }
            var all: [Result<Bool, any Error>] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let refused = outcomes.filter { if case .failure(let error) = $0 { return (error as? AuthError) == .busy(retryAfterSeconds: 1) } else { return false } }
        #expect(refused.count >= 4 - 0 && refused.count <= 4)
        #expect(outcomes.count - refused.count == 2)
        #expect(hasher.load == 0)
        try await pool.shutdownGracefully()
    }

    /// The capacity is calibrated from the first hash (the decoy hash at start), not from a hash of its own.
    @Test func theCapacityIsCalibratedFromTheFirstHash() async throws {
        // Its own pool, as the server gives it: the first hash measures hashing, not a queue shared with other tests.
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let hasher = BoundedPasswordHasher(base: BcryptPasswordHasher(cost: 4, threadPool: pool), threads: 1)
        #expect(hasher.capacity == 1)
        let started = ContinuousClock.now
        _ = try await hasher.hash("correct horse")
        let outer = started.duration(to: .now)
        // The hash it timed took at most as long as the call around it, so its capacity is at least the one for that.
        #expect(hasher.capacity >= BoundedPasswordHasher.capacity(threads: 1, hashDuration: outer))
        #expect(hasher.capacity <= BoundedPasswordHasher.capacity(threads: 1, hashDuration: .zero))
        let calibrated = hasher.capacity
        _ = try await hasher.verify("correct horse", against: try await BcryptPasswordHasher(cost: 4).hash("correct horse"))
        #expect(hasher.capacity == calibrated)
        try await pool.shutdownGracefully()
    }

    @Test func theBoundFollowsTheCostAndTheThreads() {
        #expect(BoundedPasswordHasher.capacity(threads: 1, hashDuration: .milliseconds(250)) == 4)
        #expect(BoundedPasswordHasher.capacity(threads: 3, hashDuration: .milliseconds(100)) == 30)
        #expect(BoundedPasswordHasher.capacity(threads: 2, hashDuration: .seconds(3)) == 2)
    }
}
