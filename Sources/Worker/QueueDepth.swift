import Logging
import PostgresNIO
import Schema

/// Samples how many operations are pending and executing across all workers into the
/// `volumed_queue_depth` gauge. Called when metrics are scraped, never on the claim path.
public struct QueueDepth: Sendable {
    public let pending: Int
    public let executing: Int

    /// Reads the counts (one statement on the partial index of unfinished rows) and records them.
    public static func sample(_ client: PostgresClient, logger: Logger) async throws -> QueueDepth {
        var depth = QueueDepth(pending: 0, executing: 0)
        if let (pending, executing) = try await client.rows(QueueSQL.depth, logger: logger).first?.decode((Int, Int).self) {
            depth = QueueDepth(pending: pending, executing: executing)
        }
        WorkerMetrics().queueDepth(pending: depth.pending, executing: depth.executing)
        return depth
    }
}
