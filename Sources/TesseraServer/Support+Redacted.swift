import Foundation
import TesseraCore
import TesseraStore

// What a value says of itself when something prints it: ServiceLifecycle logs every service of the group at
// `debug` by its description, and without one Swift prints a struct's every stored property, recursively — the
// services hold the store (a database URL with its password), the cookie secret and the decoy password. Each says
// its name and nothing else.

extension AuthService: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "AuthService" }
    public var debugDescription: String { self.description }
}

extension TesseraServices: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "TesseraServices" }
    public var debugDescription: String { self.description }
}

extension BrowserSession: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "BrowserSession" }
    public var debugDescription: String { self.description }
}

extension RevocationLogFollower: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "RevocationLogFollower" }
    public var debugDescription: String { self.description }
}

extension Housekeeping: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "Housekeeping" }
    public var debugDescription: String { self.description }
}

extension KeyMaintenance: CustomStringConvertible, CustomDebugStringConvertible {
    var description: String { "KeyMaintenance" }
    var debugDescription: String { self.description }
}

extension StoreCloser: CustomStringConvertible, CustomDebugStringConvertible {
    var description: String { "StoreCloser" }
    var debugDescription: String { self.description }
}

extension APITokenUseFlusher: CustomStringConvertible, CustomDebugStringConvertible {
    var description: String { "APITokenUseFlusher" }
    var debugDescription: String { self.description }
}
