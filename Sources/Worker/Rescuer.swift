import Foundation
import Logging
import PostgresNIO
import Schema

/// Returns operations whose worker stopped renewing its lease (killed, partitioned, stalled)
/// to `pending` with their checkpoint, so another worker resumes them. Every worker runs
/// this loop; a transaction-scoped advisory lock lets only one of them rescue at a time.
public struct Rescuer: Sendable {
    let client: PostgresClient
    let interval: Duration
    let logger: Logger
    let metrics: WorkerMetrics

    public init(client: PostgresClient, interval: Duration, logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
        self.metrics = WorkerMetrics()
    }

    func run(afterRescue: @escaping @Sendable () -> Void) async {
        while !Task.isCancelled {
            // Jitter keeps many workers from contending for the lock in step.
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: interval * jitter)
            if Task.isCancelled { return }
            do {
                if try await rescueOnce() > 0 { afterRescue() }
            } catch {
                logger.warning("rescuer pass failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// One pass; returns how many operations were returned to pending or failed.
    /// Zero when another worker holds the rescuer lock.
    @discardableResult
    public func rescueOnce(limit: Int = 1000) async throws -> Int {
        let (logger, metrics) = (self.logger, self.metrics)
        return try await client.inTransaction(logger: logger) { connection in
            let locked = try await connection.query(
                "SELECT pg_try_advisory_xact_lock(\(QueueSQL.rescuerLockKey))", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            guard locked else { return 0 }
            var (ids, retries): ([UUID], [Bool]) = ([], [])
            let expired = try await connection.query(QueueSQL.lockExpired(limit: limit), logger: logger)
            for try await (id, attempts, maxAttempts) in expired.decode((UUID, Int, Int).self) {
                ids.append(id)
                retries.append(shouldRetry(transient: true, attempts: attempts, maxAttempts: maxAttempts))
            }
            guard !ids.isEmpty else { return 0 }
            var count = 0
            let rows = try await connection.query(QueueSQL.rescue(ids: ids, retries: retries), logger: logger)
            for try await (id, status) in rows.decode((UUID, String).self) {
                count += 1
                logger.notice("rescued an operation whose lease expired",
                              metadata: ["operation": "\(id)", "now": "\(status)"])
            }
            if count > 0 { metrics.rescued(count: count) }
            return count
        }
    }
}
