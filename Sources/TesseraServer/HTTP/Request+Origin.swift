import Hummingbird
import TesseraCore

extension Request {
    /// Where the request came from, for sessions and audit rows; `deviceName` and `terminalId` from the body when given.
    func origin(context: TesseraRequestContext, deviceName: String? = nil, terminalId: String? = nil) -> RequestOrigin {
        RequestOrigin(
            ip: context.clientAddress,
            userAgent: self.headers[.userAgent],
            deviceName: deviceName,
            terminalId: terminalId ?? self.headers.first(where: { $0.name.canonicalName == "x-terminal-id" })?.value
        )
    }
}
