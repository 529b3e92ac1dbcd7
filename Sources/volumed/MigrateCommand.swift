import ArgumentParser
import Logging
import PostgresNIO
import Schema

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations (safe to run from several processes at once).")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        Volumed.bootstrapLogging()
        let logger = Logger(label: "volumed.migrate")
        let url = try database.url()
        let report = try await PostgresClient.withRunning(url, logger: logger) { client in
            try await Migrator(logger: logger).migrate(client)
        }
        if report.applied.isEmpty {
            print("schema is up to date (\(report.alreadyApplied) migrations applied)")
        } else {
            for migration in report.applied { print("applied \(migration.fileName)") }
        }
    }
}
