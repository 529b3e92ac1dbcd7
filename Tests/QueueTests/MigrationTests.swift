import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing

@Suite struct MigrationTests {
    @Test func embeddedMigrationsAreNumberedInOrderFromTheMigrationsFolder() throws {
        let migrations = Migration.embedded
        #expect(migrations.map(\.version) == Array(1...migrations.count))
        // The binary carries exactly the files of migrations/.
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(migrations.map(\.fileName) == files)
        for migration in migrations {
            let text = try String(contentsOf: folder.appendingPathComponent(migration.fileName), encoding: .utf8)
            #expect(migration.sql == text)
        }
    }

    @Test func secondMigrateIsANoOp() async throws {
        let url = try DatabaseURL(try await TestCluster.shared.emptyDatabase())
        try await PostgresClient.withRunning(url, logger: testLogger) { client in
            let first = try await Migrator(logger: testLogger).migrate(client)
            #expect(first.applied.count == Migration.embedded.count)
            let second = try await Migrator(logger: testLogger).migrate(client)
            #expect(second.applied.isEmpty)
            #expect(second.alreadyApplied == Migration.embedded.count)
            try await Migrator(logger: testLogger).checkUpToDate(client)
        }
    }

    @Test func concurrentMigrationsApplyEachFileOnce() async throws {
        let url = try DatabaseURL(try await TestCluster.shared.emptyDatabase())
        let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await PostgresClient.withRunning(url, logger: testLogger) { client in
                        try await Migrator(logger: testLogger).migrate(client)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.map(\.applied.count).reduce(0, +) == Migration.embedded.count)
        #expect(reports.filter { !$0.applied.isEmpty }.count == 1)
        try await PostgresClient.withRunning(url, logger: testLogger) { client in
            let rows = try await client.query("SELECT count(*)::int FROM schema_migrations", logger: testLogger)
            for try await count in rows.decode(Int.self) { #expect(count == Migration.embedded.count) }
        }
    }

    @Test func refusesADatabaseWhoseAppliedMigrationChanged() async throws {
        try await withDatabase { db in
            try await db.query("UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 1")
            await #expect {
                try await Migrator(logger: testLogger).migrate(db.client)
            } throws: { error in
                (error as? MigrationError)?.code == "migration_changed"
                    && "\(error)".contains("0001_queue.sql") && "\(error)".contains("new migration")
            }
            await #expect {
                try await Migrator(logger: testLogger).checkUpToDate(db.client)
            } throws: { ($0 as? MigrationError)?.code == "migration_changed" }
        }
    }

    @Test func refusesADatabaseMigratedByANewerVolumed() async throws {
        try await withDatabase { db in
            try await db.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
            await #expect {
                try await Migrator(logger: testLogger).checkUpToDate(db.client)
            } throws: { ($0 as? MigrationError)?.code == "migration_unknown" }
        }
    }

    @Test func workerCheckReportsPendingMigrations() async throws {
        let url = try DatabaseURL(try await TestCluster.shared.emptyDatabase())
        try await PostgresClient.withRunning(url, logger: testLogger) { client in
            await #expect {
                try await Migrator(logger: testLogger).checkUpToDate(client)
            } throws: { ($0 as? MigrationError)?.code == "migration_pending" && "\($0)".contains("volumed migrate") }
        }
    }

    @Test func splitterKeepsDollarQuotedBodiesAndStringsWhole() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE t (a text DEFAULT 'x;y');
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
            /* block; comment */ SELECT $tag$ ; $$ ; $tag$, $1;
            SELECT "odd;name" FROM t
            """
        let statements = SQLStatementSplitter.split(sql)
        #expect(statements.count == 4)
        #expect(statements[1].hasSuffix("END $$"))
        #expect(statements[2].contains("$tag$ ; $$ ; $tag$, $1"))
        #expect(statements[3] == "SELECT \"odd;name\" FROM t")
    }

    @Test func databaseURLForms() throws {
        let socket = try DatabaseURL("postgresql:///volumed?host=/run/postgresql&port=5433")
        #expect(socket.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5433"))
        #expect(socket.database == "volumed")
        let encoded = try DatabaseURL("postgres://u:p%40ss@%2Ftmp%2Fsock/db")
        #expect(encoded.endpoint == .unixSocket(path: "/tmp/sock/.s.PGSQL.5432"))
        #expect(encoded.password == "p@ss")
        #expect(!encoded.description.contains("p@ss"))
        let tcp = try DatabaseURL("postgres://volumed@db.example:6543/q?sslmode=require&options=-c%20search_path%3Dvolumed")
        #expect(tcp.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(tcp.sslMode == .require)
        #expect(tcp.startupParameters.map { "\($0.0)=\($0.1)" } == ["search_path=volumed"])
        #expect(throws: DatabaseURLError.self) { try DatabaseURL("mysql://x") }
        #expect(throws: DatabaseURLError.self) { try DatabaseURL("postgres://x/db?sslmode=bogus") }
    }
}
