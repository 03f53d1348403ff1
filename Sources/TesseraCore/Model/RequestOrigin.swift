import TesseraTokens

/// Where a request came from, as recorded in sessions and audit rows.
public struct RequestOrigin: Sendable, Equatable {
    public var ip: String?
    public var userAgent: String?
    public var deviceName: String?
    public var terminalId: String?

    public init(ip: String? = nil, userAgent: String? = nil, deviceName: String? = nil, terminalId: String? = nil) {
        self.ip = ip
        self.userAgent = userAgent.map { String($0.prefix(512)) }
        self.deviceName = deviceName.map { String($0.prefix(128)) }
        self.terminalId = terminalId.map { String($0.prefix(128)) }
    }

    /// The command line, for rows written by `tessera` commands.
    public static let commandLine = RequestOrigin(userAgent: "tessera-cli")
}
