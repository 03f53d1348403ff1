import Testing

@testable import TesseraServer

/// The client address decides sign-in limits and is recorded in sessions and audit rows.
@Suite struct TrustedProxiesTests {
    let proxies = try! TrustedProxies(parsing: "10.0.0.0/8, 192.168.1.10, ::1/128, fd00::/8")

    /// Attack stopped: a client writing `X-Forwarded-For: 127.0.0.1` (or any address) to escape its own sign-in limit
    /// or to put someone else's address in the audit log.
    @Test func headersFromAPeerThatIsNotATrustedProxyAreIgnored() {
        #expect(TrustedProxies.none.clientAddress(peer: "203.0.113.5", forwarded: [], forwardedFor: ["127.0.0.1"]) == "203.0.113.5")
        #expect(self.proxies.clientAddress(peer: "203.0.113.5", forwarded: ["for=1.2.3.4"], forwardedFor: ["1.2.3.4"]) == "203.0.113.5")
    }

    @Test func behindTrustedProxiesTheRightMostUntrustedHopIsTheClient() {
        // The client prepended a fake address; the proxies appended what they saw.
        #expect(self.proxies.clientAddress(peer: "10.1.2.3", forwarded: [], forwardedFor: ["6.6.6.6, 198.51.100.7, 10.9.9.9"]) == "198.51.100.7")
        #expect(self.proxies.clientAddress(peer: "192.168.1.10", forwarded: [], forwardedFor: ["198.51.100.7"]) == "198.51.100.7")
        #expect(
            self.proxies.clientAddress(peer: "::1", forwarded: [#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#], forwardedFor: ["9.9.9.9"])
                == "2001:db8::7"
        )
        // Nothing believable: the peer.
        #expect(self.proxies.clientAddress(peer: "10.1.2.3", forwarded: [], forwardedFor: ["unknown"]) == "10.1.2.3")
        #expect(self.proxies.clientAddress(peer: "10.1.2.3", forwarded: [], forwardedFor: []) == "10.1.2.3")
    }

    @Test func networksMatchByPrefix() {
        #expect(self.proxies.trusts("10.255.0.1"))
        #expect(!self.proxies.trusts("11.0.0.1"))
        #expect(!self.proxies.trusts("192.168.1.11"))
        #expect(self.proxies.trusts("fd12::1"))
        #expect(!self.proxies.trusts("fe80::1"))
        #expect(!self.proxies.trusts("not an address"))
    }

    @Test(arguments: ["10.0.0.0/33", "nonsense", "1.2.3.4/-1", "::1/129", "10.0.0.0/8/8"])
    func aListThatCannotBeReadIsAStartUpError(text: String) {
        #expect(throws: ConfigurationError.self) { _ = try TrustedProxies(parsing: text) }
    }
}
