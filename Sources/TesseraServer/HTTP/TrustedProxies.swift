#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (`TESSERA_TRUSTED_PROXIES`, a
/// comma-separated list of CIDRs; none by default).
///
/// The client address decides the sign-in limits (``LoginThrottle``) and is recorded in sessions and audit rows, so
/// it must not be something a client can write: a header is read only when the peer is a trusted proxy, and then
/// from the right, skipping trusted hops, so that an address the client prepended itself is never taken.
public struct TrustedProxies: Sendable, Equatable {
    /// One network: its address bytes (4 or 16) and prefix length.
    struct Network: Sendable, Equatable {
        let bytes: [UInt8]
        let prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == self.bytes.count else { return false }
            var remaining = self.prefix
            for index in self.bytes.indices where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != self.bytes[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]

    /// No proxy is trusted: the peer is the client.
    public static let none = TrustedProxies(networks: [])

    init(networks: [Network]) {
        self.networks = networks
    }

    /// Parses `10.0.0.0/8, 192.168.1.10, ::1/128`; throws a ``ConfigurationError`` naming the entry it cannot read.
    public init(parsing text: String) throws {
        var networks: [Network] = []
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let bytes = Self.parseAddress(String(parts[0])) else {
                throw ConfigurationError("TESSERA_TRUSTED_PROXIES: '\(entry)' is not an IP address or CIDR (e.g. 10.0.0.0/8)")
            }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...(bytes.count * 8)).contains(prefix) else {
                throw ConfigurationError("TESSERA_TRUSTED_PROXIES: '\(entry)' has a prefix length out of range")
            }
            networks.append(Network(bytes: bytes, prefix: prefix))
        }
        self.networks = networks
    }

    /// Whether an address is one of the trusted proxies.
    public func trusts(_ address: String) -> Bool {
        guard !self.networks.isEmpty, let bytes = Self.parseAddress(address) else { return false }
        return self.networks.contains { $0.contains(bytes) }
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most address in
    /// `Forwarded` (RFC 7239) or else `X-Forwarded-For` that is not itself a trusted proxy.
    public func clientAddress(peer: String?, forwarded: [String], forwardedFor: [String]) -> String? {
        guard let peer, self.trusts(peer) else { return peer }
        var hops: [String] = []
        if !forwarded.isEmpty {
            for element in forwarded.joined(separator: ",").split(separator: ",") {
                for pair in element.split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if parts.count == 2, parts[0].lowercased() == "for" { hops.append(Self.stripPort(parts[1])) }
                }
            }
        } else {
            hops = forwardedFor.joined(separator: ",").split(separator: ",").map { Self.stripPort($0.trimmingCharacters(in: .whitespaces)) }
        }
        for hop in hops.reversed() {
            guard Self.parseAddress(hop) != nil else { return peer }  // garbage or "unknown": trust nothing further left
            if !self.trusts(hop) { return hop }
        }
        return hops.first.flatMap { Self.parseAddress($0) != nil ? $0 : nil } ?? peer
    }

    /// `"[2001:db8::1]:443"`, `192.0.2.1:80`, `"192.0.2.1"` → the address alone.
    static func stripPort(_ text: String) -> String {
        var value = Substring(text)
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { return String(value) }
            return String(value[value.index(after: value.startIndex)..<close])
        }
        if value.filter({ $0 == ":" }).count == 1, let colon = value.firstIndex(of: ":") { return String(value[..<colon]) }
        return String(value)
    }

    /// The bytes of an IPv4 (4) or IPv6 (16) address, or nil.
    static func parseAddress(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
