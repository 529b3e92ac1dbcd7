import Crypto
import Foundation

/// One numbered file of `migrations/`, as embedded in the binary at build time.
public struct Migration: Sendable, Equatable {
    /// `NNNN` of `NNNN_name.sql`.
    public let version: Int
    public let name: String
    public let fileName: String
    public let sql: String
    /// SHA-256 of the file's text; a changed applied migration is refused.
    public let checksum: String

    public init(fileName: String, sql: String) throws(MigrationError) {
        let stem = fileName.hasSuffix(".sql") ? String(fileName.dropLast(4)) : fileName
        guard let underscore = stem.firstIndex(of: "_"),
              let version = Int(stem[..<underscore]), version > 0
        else {
            throw MigrationError(code: "migration_bad_name",
                                 message: "migration file \(fileName) must be named NNNN_name.sql")
        }
        self.version = version
        self.name = String(stem[stem.index(after: underscore)...])
        self.fileName = fileName
        self.sql = sql
        self.checksum = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Every migration carried by this binary, in version order.
    public static let embedded: [Migration] = {
        let migrations = embeddedMigrationFiles.map { file in
            // The names are checked by a test; a bad name here is a build defect.
            try! Migration(fileName: file.name, sql: file.sql)
        }
        return migrations.sorted { $0.version < $1.version }
    }()
}

public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public let code: String
    public let message: String
    public var description: String { message }
}
