import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete finished operations (completed, failed, cancelled) older than a given age, with their events.",
        discussion: """
            Deletes in batches (one short transaction each), oldest first; pending and executing operations are never
            touched. Run it from cron or a systemd timer, e.g. daily: volumed prune --older-than 30d
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Age of the operations to delete: a whole number and s, m, h, d or w, e.g. 30d or 12h.")
    var olderThan: String
    @Flag(help: "Count what would be deleted; delete nothing.") var dryRun = false
    @Option(help: "Operations deleted per transaction.") var batchSize: Int = OperationPruner.defaultBatchSize

    func validate() throws {
        do {
            _ = try RetentionPeriod(parsing: olderThan)
        } catch {
            throw ValidationError(error.description)
        }
        guard (1...100_000).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and 100000 operations per transaction (got \(batchSize))")
        }
    }

    func run() async throws {
        let period = try RetentionPeriod(parsing: olderThan)
        let logger = quietLogger("volumed.prune")
        let (dryRun, batchSize) = (self.dryRun, self.batchSize)
        let report = try await PostgresClient.withRunning(try database.url(), maximumConnections: 2, logger: logger) { client in
            try await Migrator(logger: logger).checkUpToDate(client)
            return try await OperationPruner(client: client, logger: logger).prune(olderThan: period, batchSize: batchSize, dryRun: dryRun)
        }
        let cutoff = report.cutoff.formatted(.iso8601)
        if report.dryRun {
            print("would delete \(report.operations) operations and \(report.events) events finished before \(cutoff) "
                  + "(older than \(period)); nothing deleted (--dry-run)")
        } else {
            print("deleted \(report.operations) operations and \(report.events) events finished before \(cutoff) "
                  + "(older than \(period)) in \(report.batches) batches")
        }
    }
}
