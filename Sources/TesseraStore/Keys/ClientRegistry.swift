import Crypto
import Foundation
import Logging
import Synchronization
import TesseraCore

/// The registered clients (services that introspect, revoke or follow the feed), held in memory so that checking a
/// client's credentials costs no I/O; read again every 10 seconds, and at once when an id it does not know is
/// presented (at most once a second, so that a flood of made-up ids costs one read a second, not one per request):
/// a client added by the CLI works at once, a removed one stops within 10 seconds.
public final class ClientRegistry: Sendable {
    /// What a client may do.
    public enum Permission: Sendable {
        case introspect
        case revoke
        case feed
    }

    public let store: SQLAuthStore
    private let clients = Mutex<[String: OAuthClient]>([:])
    /// How often an unknown id may send the registry to the database.
    private let missReloads = RateGate(every: .seconds(1))
    /// Compared against when the id is unknown, so that an unknown id costs what a wrong secret does.
    private static let decoyHash = Array(SHA256.hash(data: Array("tessera decoy client secret".utf8)))

    public init(store: SQLAuthStore) async throws {
        self.store = store
        try await self.reload()
    }

    /// Reads the clients again.
    public func reload() async throws {
        let live = try await self.store.liveClients()
        self.clients.withLock { $0 = Dictionary(live.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }) }
    }

    /// The client these credentials name, if the secret is right (compared in constant time) and it is live.
    /// Throws ``StoreUnavailable`` when an unknown id sent it to the database and the database did not answer.
    public func authenticate(id: String, secret: String) async throws -> OAuthClient? {
        var client = self.clients.withLock { $0[id] }
        if client == nil, self.missReloads.admit() {
            try await self.reload()
            client = self.clients.withLock { $0[id] }
        }
        let presented = SHA256.hash(data: Array(secret.utf8))
        let expected = client.flatMap { Self.hexBytes($0.secretHash) } ?? Self.decoyHash
        // swift-crypto's comparison of a digest with bytes is constant-time.
        let matches = presented == expected
        guard let client, matches else { return nil }
        return client
    }

    /// A new client's id and secret (256 random bits), and the row to store: only the secret's hash is kept.
    public static func newClient(name: String, permissions: Set<Permission>, now: Date) -> (client: OAuthClient, secret: String) {
        let id = "tc_" + OpaqueToken.generate().prefix(22)
        let secret = "tcs_" + OpaqueToken.generate()
        let client = OAuthClient(
            id: String(id), name: name, secretHash: Self.hash(secret), mayIntrospect: permissions.contains(.introspect),
            mayRevoke: permissions.contains(.revoke), mayFeed: permissions.contains(.feed), createdAt: now
        )
        return (client, secret)
    }

    /// The stored form of a secret: SHA-256, hex.
    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Array(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func hexBytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for index in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
