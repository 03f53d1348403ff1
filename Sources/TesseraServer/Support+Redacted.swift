import Foundation
import TesseraCore
import TesseraStore

/// A value that says its type's name and nothing else when something prints it. ServiceLifecycle logs every service
/// of the group at `debug` by its description, and without one Swift prints a struct's every stored property,
/// recursively — the services hold the store (a database URL with its password), the cookie secret and the decoy
/// password.
protocol DescribedByTypeName: CustomStringConvertible, CustomDebugStringConvertible {}

extension DescribedByTypeName {
    public var description: String { String(describing: Self.self) }
    public var debugDescription: String { self.description }
}

extension AuthService: DescribedByTypeName {}
extension TesseraServices: DescribedByTypeName {}
extension BrowserSession: DescribedByTypeName {}
extension RevocationLogFollower: DescribedByTypeName {}
extension Housekeeping: DescribedByTypeName {}
extension KeyMaintenance: DescribedByTypeName {}
extension StoreCloser: DescribedByTypeName {}
extension APITokenUseFlusher: DescribedByTypeName {}
