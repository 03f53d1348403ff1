import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TesseraCore
import TesseraStore

/// Finds the signing secret: `JWT_SECRET` when set; in development otherwise one generated once and kept in a
/// file beside the SQLite database (mode 0600), so that tokens survive a restart and the CLI signs with the same key.
public enum SecretResolver {
    /// The file that holds the development secret for a database.
    public static func secretFile(for database: DatabaseURL) -> String {
        switch database {
        case .sqlite(let path): return path + ".jwt-secret"
        case .postgres: return ".tessera.jwt-secret"
        }
    }

    public static func resolve(_ configuration: Configuration, logger: Logger) throws -> String {
        if let secret = configuration.jwtSecret { return secret }
        guard configuration.mode == .development else {
            throw ConfigurationError("JWT_SECRET is not set; TESSERA_ENV=production refuses to start without one")
        }
        let path = Self.secretFile(for: configuration.database)
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            existing.utf8.count >= SigningKey.minimumSecretLength
        {
            logger.warning("JWT_SECRET is not set: using the development secret kept beside the database", metadata: ["file": "\(path)"])
            return existing
        }
        // O_EXCL: if another process (a CLI command beside the server) creates it first, use its secret.
        let secret = SigningKey.generateSecret()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if descriptor < 0 {
            if errno == EEXIST, let raced = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
                raced.utf8.count >= SigningKey.minimumSecretLength
            {
                return raced
            }
            throw ConfigurationError("JWT_SECRET is not set and the development secret could not be written to \(path)")
        }
        let bytes = Array((secret + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        fsync(descriptor)
        close(descriptor)
        guard written == bytes.count else { throw ConfigurationError("the development secret could not be written to \(path)") }
        logger.warning(
            "JWT_SECRET is not set: generated a development secret and kept it beside the database; set JWT_SECRET in production",
            metadata: ["file": "\(path)"]
        )
        return secret
    }
}
