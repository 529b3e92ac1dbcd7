import Foundation
import Logging
import PostgresNIO

/// Starts `processes` no-op workers, inserts `count` operations on distinct volumes and
/// returns the seconds until none is pending or executing. Whatever else the table holds
/// (history) stays; every operation must end `completed`.
func measureDrain(url: String, client: PostgresClient, processes: Int, batch: Int, count: Int,
                  logger: Logger) async throws -> Double {
    let workers = try await WorkerProcesses.start(count: processes, arguments: [
        "--database-url", url, "--handler", "noop", "--batch", "\(batch)", "--concurrency", "\(max(2, batch * 2))",
    ])
    defer { Task { await workers.stop() } }
    try await client.query("""
        INSERT INTO volume_operations (type, volume_id)
        SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(count))
        """, logger: logger)
    let start = ContinuousClock.now
    // Polled every 10 ms through the two partial indexes (a count over the table would
    // cost the database more than a claim and slow down what is being measured).
    while true {
        let rows = try await client.query("""
            SELECT EXISTS (SELECT 1 FROM volume_operations WHERE status = 'pending')
                OR EXISTS (SELECT 1 FROM volume_operations WHERE status = 'executing')
            """, logger: logger)
        var busy = false
        for try await value in rows.decode(Bool.self) { busy = value }
        if !busy { break }
        try await Task.sleep(for: .milliseconds(10))
    }
    let elapsed = ContinuousClock.now - start
    await workers.stop()
    let failed = try await client.query("SELECT count(*)::int FROM volume_operations WHERE status <> 'completed'", logger: logger)
    for try await value in failed.decode(Int.self) where value != 0 {
        throw BenchError("\(value) operations did not complete")
    }
    return elapsed.seconds
}
