import Foundation
import Hummingbird
import HummingbirdTesting
import JWTKit
import NIOCore
import Testing
import TesseraCore
import TesseraStore

@testable import TesseraServer

/// The JWKS, the key routes and the OAuth endpoints through the real router.
@Suite struct OAuthRoutesTests {
    static let admin = "root@example.org"
    static let kek = String(repeating: "q", count: 40)

    func asymmetric(_ algorithm: SigningAlgorithm) -> (inout Configuration) -> Void {
        { configuration in
            configuration.jwtAlgorithm = algorithm
            configuration.keyEncryptionKeys = [Self.kek]
        }
    }

    /// What another Swift service does with only Tessera's URL: load the served JWKS into jwt-kit and verify.
    @Test(arguments: [SigningAlgorithm.edDSA, .es256])
    func jwtKitVerifiesATokenFromTheServedJWKS(_ algorithm: SigningAlgorithm) async throws {
        try await TestApp.run(self.asymmetric(algorithm)) { client in
            try await client.register()
            let token = try #require(try await client.login().string("accessToken"))
            let jwks = try await client.call(.get, "/.well-known/jwks.json")
            #expect(jwks.status == .ok)
            #expect(jwks.headers[.cacheControl] == "public, max-age=300")
            let keys = try await JWTKeyCollection().add(jwksJSON: String(buffer: jwks.body))
            let claims = try await keys.verify(token, as: AccessTokenClaims.self)
            #expect(claims.iss == "tessera" && claims.aud == "tessera")
            #expect(!String(buffer: jwks.body).contains("\"d\""), "a private key was published")
            #expect(try await client.ping(token) == .ok)
        }
    }

    /// HS256 rotation by configuration: a token signed with a previous secret still verifies; one signed with a secret
    /// that is neither current nor previous does not. Nothing is published.
    @Test func previousHS256SecretsStillVerify() async throws {
        let previous = String(repeating: "p", count: 40)
        try await TestApp.run({ $0.jwtPreviousSecrets = [previous] }) { client in
            try await client.register()
            let pair = try await client.login()
            let user = User(id: UUID(uuidString: try #require((pair["user"] as? [String: Any])?["id"] as? String))!, email: "ann@example.org", role: .user, isActive: true, createdAt: Date())
            let session = Session(
                id: UUID(uuidString: try #require(pair.string("sessionId")))!, userId: user.id, createdAt: Date(), lastSeenAt: Date(), expiresAt: Date(),
                ip: nil, userAgent: nil, deviceName: nil, terminalId: nil, tokenVersion: 0, epoch: 0
            )
            let old = try await AccessTokenSigner(key: try await SigningKey(secret: previous), settings: TokenSettings()).sign(user: user, session: session, now: Date())
            #expect(try await client.ping(old.token) == .ok)
            let foreign = try await AccessTokenSigner(key: try await SigningKey(secret: String(repeating: "f", count: 40)), settings: TokenSettings())
                .sign(user: user, session: session, now: Date())
            #expect(try await client.ping(foreign.token) == .unauthorized)
            #expect(String(buffer: try await client.call(.get, "/.well-known/jwks.json").body) == #"{"keys":[]}"#)
        }
    }

    @Test func keyRoutesAreForAdminsAndHS256KeysRotateByConfiguration() async throws {
        try await TestApp.run(admins: [Self.admin]) { client in
            try await client.register()
            let user = try #require(try await client.login().string("accessToken"))
            let admin = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            for (method, path) in [(HTTPRequest.Method.get, "/api/admin/keys"), (.post, "/api/admin/keys/rotate"), (.get, "/api/admin/clients")] {
                #expect(try await client.call(method, path).status == .unauthorized)
                #expect(try await client.call(method, path, token: user).status == .forbidden)
            }
            let listing = try JSONBody(try await client.call(.get, "/api/admin/keys", token: admin))
            #expect(listing.string("algorithm") == "HS256")
            let keys = try #require(listing["keys"] as? [[String: Any]])
            #expect(keys.map { $0["kid"] as? String } == [SigningKey.secretKid(TestApp.secret)])
            let rotate = try await client.call(.post, "/api/admin/keys/rotate", token: admin)
            #expect(rotate.status == .conflict)
            #expect(try JSONBody(rotate).string("code") == "key_change_refused")
            #expect(try await client.call(.post, "/api/admin/keys/nope/revoke", token: admin).status == .notFound)
        }
    }

    @Test func anAdminRotatesAndRevokesAsymmetricKeys() async throws {
        try await TestApp.run(admins: [Self.admin], self.asymmetric(.edDSA)) { client in
            let admin = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            let rotated = try await client.call(.post, "/api/admin/keys/rotate", token: admin)
            #expect(rotated.status == .created)
            let published = try #require((try JSONBody(rotated)["key"] as? [String: Any])?["kid"] as? String)
            let jwks = String(buffer: try await client.call(.get, "/.well-known/jwks.json").body)
            #expect(jwks.contains(published))
            let keys = try #require(try JSONBody(try await client.call(.get, "/api/admin/keys", token: admin))["keys"] as? [[String: Any]])
            let current = try #require(keys.first { $0["state"] as? String == "current" }?["kid"] as? String)
            // The admin's own token was signed by the key revoked here: the answer is the last thing it gets.
            let revoked = try await client.postJSON("/api/admin/keys/\(current)/revoke", ["reason": "drill"], token: admin)
            #expect(revoked.status == .ok)
            #expect(try await client.ping(admin) == .unauthorized)
            let fresh = try #require(try await client.login(Self.admin, password: "admin password").string("accessToken"))
            #expect(try await client.ping(fresh) == .ok)
            let states = try #require(try JSONBody(try await client.call(.get, "/api/admin/keys", token: fresh))["keys"] as? [[String: Any]])
            #expect(states.first { $0["kid"] as? String == current }?["state"] as? String == "revoked")
        }
    }

    func form(_ fields: [String: String]) -> ByteBuffer {
        ByteBuffer(string: fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&"))
    }

    @Test func introspectionNeedsAClientAndAnswersExactlyInactiveForAnythingNotActive() async throws {
        try await TestApp.run { client in
            try await client.register()
            let pair = try await client.login()
            let token = try #require(pair.string("accessToken"))
            let headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let anonymous = try await client.execute(uri: "/oauth/introspect", method: .post, headers: headers, body: self.form(["token": token]))
            #expect(anonymous.status == .unauthorized)
            #expect(try JSONBody(anonymous).string("error") == "invalid_client")
            #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Basic") == true)
            let json = try await client.execute(
                uri: "/oauth/introspect", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"token":"x"}"#)
            )
            #expect(json.status == .badRequest)
            #expect(try JSONBody(json).string("error") == "invalid_request")
        }
    }
}
