import Foundation
import Logging
import PostgresNIO
import Schema

/// Retention for the queue's history (LESSONS "Table health"): deletes terminal operations
/// (completed, failed, cancelled) that finished before a cutoff, with their events, in
/// batches of one short transaction each, so no lock is held for long and autovacuum
/// (tuned in 0003_table_health.sql) reclaims the space as it goes. Pending and executing
/// operations are never touched.
public struct OperationPruner: Sendable {
    /// Rows per transaction: large enough to prune millions in minutes, small enough that
    /// each statement holds its row locks for a fraction of a second.
    public static let defaultBatchSize = 10_000

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Prunes (or, with `dryRun`, counts) operations that finished more than `period` ago.
    public func prune(olderThan period: RetentionPeriod, batchSize: Int = defaultBatchSize, dryRun: Bool = false) async throws -> PruneReport {
        precondition(batchSize > 0, "batch size must be positive")
        guard let cutoff = try await client.rows(QueueSQL.retentionCutoff(olderThanSeconds: period.seconds), logger: logger)
            .first?.decode(Date.self) else { throw noRow() }
        var report = PruneReport(cutoff: cutoff, dryRun: dryRun)
        if dryRun {
            (report.operations, report.events) = try await counts(QueueSQL.pruneCount(cutoff: cutoff))
            return report
        }
        while true {
            try Task.checkCancellation()
            let (operations, events) = try await counts(QueueSQL.pruneBatch(cutoff: cutoff, limit: batchSize))
            if operations > 0 { report.batches += 1 }
            report.operations += operations
            report.events += events
            logger.debug("pruned a batch", metadata: ["operations": "\(operations)", "events": "\(events)"])
            if operations < Int64(batchSize) { break }
        }
        logger.info("pruned finished operations", metadata: [
            "operations": "\(report.operations)", "events": "\(report.events)", "cutoff": "\(cutoff)",
        ])
        return report
    }

    /// (operations, events) from a statement answering one row of two counts.
    private func counts(_ query: PostgresQuery) async throws -> (Int64, Int64) {
        for row in try await client.rows(query, logger: logger) { return try row.decode((Int64, Int64).self) }
        throw noRow()
    }

    private func noRow() -> QueueFailure {
        QueueFailure(code: "database_error", message: "the database returned no row for a prune statement", isTransient: true)
    }
}

/// What one prune deleted (or, in a dry run, would delete).
public struct PruneReport: Sendable, Equatable {
    /// Operations that finished before this (database clock) were pruned.
    public var cutoff: Date
    public var dryRun: Bool
    public var operations: Int64 = 0
    public var events: Int64 = 0
    /// Transactions that deleted something.
    public var batches: Int = 0

    public init(cutoff: Date, dryRun: Bool) {
        self.cutoff = cutoff
        self.dryRun = dryRun
    }
}
