import Logging
import PostgresNIO

/// Applies `Migration.embedded` to a database: in order, one transaction each, recorded with a
/// checksum in `schema_migrations`, serialised across processes by an advisory lock.
public struct Migrator: Sendable {
    /// Any fixed number works; it only has to be the same for every volumed process.
    static let advisoryLockKey: Int64 = 0x766F_6C75_6D65_6401 // "volumed\u{1}"

    public let migrations: [Migration]
    let logger: Logger

    public init(migrations: [Migration] = Migration.embedded, logger: Logger) {
        self.migrations = migrations
        self.logger = logger
    }

    public struct Report: Sendable {
        public let applied: [Migration]
        public let alreadyApplied: Int
    }

    /// Applies what is pending. Safe to run from several processes at once: the advisory lock
    /// makes them take turns, and each re-reads what is applied once it holds the lock.
    @discardableResult
    public func migrate(_ client: PostgresClient) async throws -> Report {
        try await client.withGuardedConnection { connection in
            // A session lock on this one connection; released in all paths below.
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
            do {
                let report = try await migrateHoldingLock(connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                return report
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    private func migrateHoldingLock(_ connection: PostgresConnection) async throws -> Report {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let applied = try await appliedMigrations(connection)
        try verify(applied: applied)

        var newlyApplied: [Migration] = []
        for migration in migrations where applied[migration.version] == nil {
            logger.info("applying migration", metadata: ["migration": "\(migration.fileName)"])
            do {
                try await connection.withTransaction(logger: logger) { transaction in
                    for statement in SQLStatementSplitter.split(migration.sql) {
                        try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await transaction.query("""
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """, logger: logger)
                }
            } catch {
                throw MigrationError(
                    code: "migration_failed",
                    message: "migration \(migration.fileName) failed and was rolled back: \(String(reflecting: error))")
            }
            newlyApplied.append(migration)
        }
        return Report(applied: newlyApplied, alreadyApplied: applied.count)
    }

    /// Refuses a database whose applied migrations this binary does not carry unchanged.
    func verify(applied: [Int: (name: String, checksum: String)]) throws(MigrationError) {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, record) in applied.sorted(by: { $0.key < $1.key }) {
            guard let migration = known[version] else {
                throw MigrationError(
                    code: "migration_unknown",
                    message: "the database has migration \(version) (\(record.name)) that this volumed does not know; it was migrated by a newer volumed, so upgrade this binary")
            }
            guard migration.checksum == record.checksum else {
                throw MigrationError(
                    code: "migration_changed",
                    message: "migration \(migration.fileName) was changed after it was applied (checksum \(record.checksum.prefix(12))… in the database, \(migration.checksum.prefix(12))… in this binary); restore the file and put the change in a new migration")
            }
        }
    }

    private func appliedMigrations(_ connection: PostgresConnection) async throws -> [Int: (name: String, checksum: String)] {
        var applied: [Int: (name: String, checksum: String)] = [:]
        let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations", logger: logger)
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            applied[version] = (name, checksum)
        }
        return applied
    }

    /// For `volumed worker`: the schema must be exactly what this binary expects.
    public func checkUpToDate(_ client: PostgresClient) async throws {
        let applied = try await client.withGuardedConnection { connection in
            let exists = try await connection.query(
                "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            return exists ? try await appliedMigrations(connection) : [:]
        }
        try verify(applied: applied)
        let pending = migrations.filter { applied[$0.version] == nil }
        if !pending.isEmpty {
            throw MigrationError(
                code: "migration_pending",
                message: "the database is missing \(pending.count) migration(s) (\(pending.map(\.fileName).joined(separator: ", "))); run `volumed migrate` first")
        }
    }
}
