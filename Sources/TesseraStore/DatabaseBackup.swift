import Foundation
import Logging
import SQLKit
import SQLiteKit
import SQLiteNIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Copies a SQLite database into a new file while a server works on it, then checks the copy.
///
/// The copy is SQLite's `VACUUM INTO`, which reads the whole database in one read transaction: the file holds the
/// database exactly as it was at one instant (every revocation acknowledged before that instant, none half-written),
/// and in WAL mode writers go on committing beside it. The copy is written to a hidden partial file beside the path
/// (claimed with `O_EXCL`) and synced, since SQLite does not sync the file it writes. The check opens it read-only as
/// a database of its own: `PRAGMA integrity_check`, the schema version, and what it holds. Only then does it appear
/// at the path, by a hard link that fails if anything is there: nothing is ever overwritten, not even a file that
/// appears meanwhile, and the path never holds a partial copy. A copy that fails any step is removed. PostgreSQL is
/// refused: its own tools (`pg_dump`, base backups) make consistent copies.
public struct DatabaseBackup: Sendable {
    let source: DatabaseURL
    /// The new file, as an absolute path.
    public let destination: String
    let logger: Logger

    /// `destination` is taken relative to the working directory unless absolute.
    public init(from source: DatabaseURL, to destination: String, logger: Logger) {
        self.source = source
        self.destination = URL(fileURLWithPath: destination).standardizedFileURL.path
        self.logger = logger
    }

    /// What a verified backup holds.
    public struct Summary: Sendable, Equatable, Codable {
        /// The backup file.
        public var path: String
        /// Its size in bytes.
        public var bytes: Int64
        public var schemaVersion: Int
        public var users: Int
        /// Sessions that were live when the backup was checked: not signed out, expired or cut off.
        public var liveSessions: Int
        /// Rows of the revocation log (`revocations`).
        public var revocationLogRows: Int
        /// The newest row's `seq`; nil when the log is empty.
        public var newestRevocationSeq: Int64?
        public var auditRows: Int

        /// Every key always present (an empty log's newest `seq` is `null`), so that scripts read one shape.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.path, forKey: .path)
            try container.encode(self.bytes, forKey: .bytes)
            try container.encode(self.schemaVersion, forKey: .schemaVersion)
            try container.encode(self.users, forKey: .users)
            try container.encode(self.liveSessions, forKey: .liveSessions)
            try container.encode(self.revocationLogRows, forKey: .revocationLogRows)
            try container.encode(self.newestRevocationSeq, forKey: .newestRevocationSeq)
            try container.encode(self.auditRows, forKey: .auditRows)
        }
    }

    /// Copies, syncs and verifies; returns what the copy holds. Throws ``BackupError`` (or ``DatabaseMissing``) with
    /// one line for people, having left no file behind.
    public func run() async throws -> Summary {
        guard case .sqlite(let sourcePath) = self.source else {
            throw BackupError(
                description: "tessera backup copies SQLite files only; back up PostgreSQL with `pg_dump -Fc` (one consistent snapshot) "
                    + "or base backups with WAL archiving (point-in-time recovery): see docs/OPERATIONS.md, \"Backups and restores\""
            )
        }
        // Checked before the source is opened, so that a mistyped path is named as such; the claim below is the guard.
        if Self.somethingExists(at: self.destination) {
            throw BackupError(description: "\(self.destination) exists; tessera backup never overwrites a file: name a new one")
        }
        let database = try await SQLiteDatabaseHandle.open(path: sourcePath, create: false, logger: self.logger)
        do {
            let summary = try await self.copy(from: database)
            await database.close()
            return summary
        } catch {
            await database.close()
            throw error
        }
    }

    private func copy(from database: SQLiteDatabaseHandle) async throws -> Summary {
        let version = try await Self.schemaVersion(on: database)
        guard version == Migrations.latestVersion else { throw Self.wrongVersion(version, of: "the database") }
        let target = URL(fileURLWithPath: self.destination)
        let folder = target.deletingLastPathComponent().path
        let partial = folder + "/." + target.lastPathComponent + ".partial-" + UUID().uuidString.prefix(8).lowercased()
        try Self.claim(partial, for: self.destination)
        var published = false
        do {
            try await DatabaseWork.$isLong.withValue(true) {
                try await database.read { db in try await db.raw("VACUUM INTO \(bind: partial)").run() }
            }
            try Self.sync(partial)
            var summary = try await Self.verify(partial, logger: self.logger)
            try Self.publish(partial, at: self.destination)
            published = true
            try Self.sync(folder)
            summary.path = self.destination
            self.logger.debug("backed up", metadata: ["to": "\(self.destination)", "bytes": "\(summary.bytes)"])
            return summary
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            if published { try? FileManager.default.removeItem(atPath: self.destination) }
            throw BackupError(description: "the backup to \(self.destination) failed; nothing was left there: \(error)")
        }
    }

    /// Opens a backup read-only, as a database of its own, and checks it: `PRAGMA integrity_check` must answer `ok`
    /// and the schema must be the one this tessera writes. Returns what it holds; throws ``BackupError``.
    public static func verify(_ path: String, now: Date = Date(), logger: Logger) async throws -> Summary {
        let path = URL(fileURLWithPath: path).standardizedFileURL.path
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: Self.readOnlyURI(path)), logger: logger)
        } catch {
            throw BackupError(description: "the copy cannot be opened: \(error)")
        }
        do {
            let summary = try await Self.summarize(path, on: connection.sql(queryLogLevel: nil), now: now)
            try? await connection.close()
            return summary
        } catch let error as BackupError {
            try? await connection.close()
            throw error
        } catch {
            try? await connection.close()
            throw BackupError(description: "the copy cannot be read: \(error)")
        }
    }

    private static func summarize(_ path: String, on db: any SQLDatabase, now: Date) async throws -> Summary {
        let problems = try await db.raw("PRAGMA integrity_check").all().map { try $0.decode(column: "integrity_check", as: String.self) }
        guard problems == ["ok"] else {
            throw BackupError(description: "the copy is damaged: \(problems.prefix(3).joined(separator: "; "))")
        }
        let version = try await Self.schemaVersion(on: db)
        guard version == Migrations.latestVersion else { throw Self.wrongVersion(version, of: "the copy") }
        func count(_ sql: SQLQueryString) async throws -> Int {
            try await db.raw(sql).first()?.decode(column: "n", as: Int.self) ?? 0
        }
        let millis = Int64(now.timeIntervalSince1970 * 1000)
        let live = try await count(
            """
            SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id JOIN global_state g ON g.id = 1
            WHERE \(unsafeRaw: SQLAuthStore.liveSessionCondition) AND s.expires_at > \(bind: millis)
            """
        )
        let newest = try await db.raw("SELECT MAX(seq) AS seq FROM revocations").first()?.decode(column: "seq", as: Int64?.self)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return Summary(
            path: path,
            bytes: (attributes[.size] as? NSNumber)?.int64Value ?? 0,
            schemaVersion: version,
            users: try await count("SELECT COUNT(*) AS n FROM users"),
            liveSessions: live,
            revocationLogRows: try await count("SELECT COUNT(*) AS n FROM revocations"),
            newestRevocationSeq: newest,
            auditRows: try await count("SELECT COUNT(*) AS n FROM audit_events")
        )
    }

    /// Read without the migrator, which would take the write lock to create its bookkeeping table.
    private static func schemaVersion(on handle: SQLiteDatabaseHandle) async throws -> Int {
        try await handle.read { db in try await Self.schemaVersion(on: db) }
    }

    private static func schemaVersion(on db: any SQLDatabase) async throws -> Int {
        let known = try await db.raw("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'tessera_migrations'").first()
        guard known != nil else { return 0 }
        let row = try await db.raw("SELECT COALESCE(MAX(version), 0) AS version FROM tessera_migrations").first()
        return try row?.decode(column: "version", as: Int.self) ?? 0
    }

    private static func wrongVersion(_ version: Int, of what: String) -> BackupError {
        if version > Migrations.latestVersion {
            return BackupError(
                description: "\(what) is at schema version \(version), newer than this tessera knows (\(Migrations.latestVersion)); upgrade tessera"
            )
        }
        return BackupError(
            description: "\(what) is at schema version \(version), not \(Migrations.latestVersion): run `tessera migrate` (or start the server) first"
        )
    }

    /// Whether anything is at the path, a dangling symbolic link included.
    private static func somethingExists(at path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)) != nil
    }

    /// Creates the file, empty and readable by its owner only (it holds password hashes), failing if anything is
    /// there: `VACUUM INTO` writes into an empty file, and this process owns the one it may remove on failure.
    private static func claim(_ path: String, for destination: String) throws {
        let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            switch code {
            case EEXIST: throw BackupError(description: "\(destination) exists; tessera backup never overwrites a file: name a new one")
            case ENOENT: throw BackupError(description: "cannot create \(destination): its folder does not exist")
            default: throw BackupError(description: "cannot create \(destination): \(String(cString: strerror(code)))")
            }
        }
        close(descriptor)
    }

    /// Puts the checked copy at its path with a hard link, which fails if anything is there (`rename` would replace
    /// it), so that the path never holds a partial file, even after a kill, and nothing is overwritten. A file system
    /// without hard links gets an `O_EXCL` placeholder at the path, which `rename` then replaces.
    private static func publish(_ partial: String, at destination: String) throws {
        if link(partial, destination) == 0 {
            try? FileManager.default.removeItem(atPath: partial)
            return
        }
        let code = errno
        guard [EPERM, ENOTSUP, EOPNOTSUPP, ENOSYS].contains(code) else {
            if code == EEXIST { throw BackupError(description: "\(destination) appeared while the copy was made, and was left as it is") }
            throw BackupError(description: "cannot create \(destination): \(String(cString: strerror(code)))")
        }
        try Self.claim(destination, for: destination)
        guard rename(partial, destination) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(atPath: destination)
            throw BackupError(description: "cannot create \(destination): \(String(cString: strerror(code)))")
        }
    }

    /// Makes what was written to a file (or a folder's new entry) durable.
    private static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw BackupError(description: "cannot open \(path) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw BackupError(description: "cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    /// A `file:` URI that opens the path read-only (the connection is opened with URI names allowed).
    static func readOnlyURI(_ path: String) -> String {
        let plain = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
        return "file:" + (path.addingPercentEncoding(withAllowedCharacters: plain) ?? path) + "?mode=ro"
    }
}

/// A backup that was refused, or that failed (leaving nothing behind).
public struct BackupError: Error, CustomStringConvertible {
    public var description: String
}
