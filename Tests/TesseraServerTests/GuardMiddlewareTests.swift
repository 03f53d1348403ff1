import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TesseraCore
@_spi(Testing) import TesseraGuard
import TesseraGuardHummingbird

/// `TesseraGuardMiddleware` through a real router: a guarded service answers as Tessera does — the caller in the
/// context, 401 `invalid_token` with its challenge, 503 with `Retry-After` while the guard knows nothing.
@Suite struct GuardMiddlewareTests {
    struct Context: GuardedRequestContext {
        var coreContext: CoreRequestContextStorage
        var identity: VerifiedAccessToken?
        init(source: ApplicationRequestContextSource) {
            self.coreContext = .init(source: source)
            self.identity = nil
        }
    }

    static func app(_ tesseraGuard: TesseraGuard) -> some ApplicationProtocol {
        let router = Router(context: Context.self)
        router.add(middleware: TesseraGuardMiddleware<Context>(tesseraGuard)).get("hello") { _, context in
            context.identity?.userId.uuidString.lowercased() ?? "nobody"
        }
        return Application(router: router)
    }

    static func key() async throws -> SigningKey {
        let pair = try #require(SigningKey.generatePair(.edDSA))
        return try await SigningKey.asymmetric(.edDSA, publicKey: pair.publicKey, privateKey: pair.privateKey)
    }

    static func token(_ key: SigningKey, session: UUID = UUID(), user: UUID = UUID()) async throws -> String {
        let account = User(id: user, email: "ann@example.org", role: .user, isActive: true, createdAt: Date())
        let device = Session(
            id: session, userId: user, createdAt: Date(), lastSeenAt: Date(), expiresAt: Date().addingTimeInterval(3600), ip: nil, userAgent: nil,
            deviceName: nil, terminalId: nil, tokenVersion: 0, epoch: 0
        )
        return try await AccessTokenSigner(key: key, settings: TokenSettings()).sign(user: account, session: device, now: Date()).token
    }

    static func guardOf(_ key: SigningKey) throws -> TesseraGuard {
        let tesseraGuard = TesseraGuard(
            configuration: TesseraGuardConfiguration(
                tesseraURL: "http://127.0.0.1:9", issuer: "tessera", audience: "tessera", clientId: "tc_test", clientSecret: "tcs_test",
                // Marked synced once by hand: a bound that a loaded machine's slow test never outlasts (one took 5.6 s).
                stalenessBound: .seconds(120)
            )
        )
        try tesseraGuard.install(keys: [key.verification], algorithm: .edDSA)
        return tesseraGuard
    }

    static func get(_ client: some TestClientProtocol, _ authorization: [String]) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        for value in authorization { headers.append(HTTPField(name: .authorization, value: value)) }
        return try await client.execute(uri: "/hello", method: .get, headers: headers, body: nil)
    }

    static func code(_ response: TestResponse) throws -> String? {
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return object?["code"] as? String
    }

    /// A guard that has not heard from Tessera knows no revocation: admitting anything would admit revoked tokens.
    @Test func aGuardThatHasHeardNothingAnswers503() async throws {
        let key = try await Self.key()
        let tesseraGuard = try Self.guardOf(key)
        let token = try await Self.token(key)
        try await Self.app(tesseraGuard).test(.router) { client in
            let response = try await Self.get(client, ["Bearer \(token)"])
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "1")
            #expect(try Self.code(response) == "revocation_index_stale")
        }
    }

    @Test func aValidTokenReachesTheHandlerAndEveryOtherIsRefusedAsTesseraRefusesIt() async throws {
        let key = try await Self.key()
        let tesseraGuard = try Self.guardOf(key)
        tesseraGuard.index.markSynced()
        let user = UUID()
        let session = UUID()
        let token = try await Self.token(key, session: session, user: user)
        let forged = try await Self.token(try await Self.key(), session: session, user: user)
        try await Self.app(tesseraGuard).test(.router) { client in
            let accepted = try await Self.get(client, ["Bearer \(token)"])
            #expect(accepted.status == .ok)
            #expect(String(buffer: accepted.body) == user.uuidString.lowercased())

            let missing = try await Self.get(client, [])
            #expect(missing.status == .unauthorized && missing.headers[.wwwAuthenticate] == "Bearer realm=\"tessera\"")
            for refused in [["Bearer \(forged)"], ["Basic dXNlcjpwYXNz"], ["Bearer \(token)", "Bearer \(token)"], ["Bearer \(token) extra"]] {
                let response = try await Self.get(client, refused)
                #expect(response.status == .unauthorized, "\(refused.map { $0.prefix(20) })")
                #expect(try Self.code(response) == "invalid_token")
            }

            // The session is signed out in Tessera and the row reaches the guard: refused from then on.
            tesseraGuard.index.apply([
                RevocationEntry(seq: 1, kind: .session(id: session, until: Date().addingTimeInterval(3600)), revokedAt: Date(), actorId: nil, reason: nil)
            ])
            let revoked = try await Self.get(client, ["Bearer \(token)"])
            #expect(revoked.status == .unauthorized)
            #expect(try Self.code(revoked) == "token_revoked")
            #expect(revoked.headers[.wwwAuthenticate] == "Bearer error=\"invalid_token\"")
        }
    }
}
