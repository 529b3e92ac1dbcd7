import Foundation
import Logging
import PostgresNIO

/// Starts `processes` no-op workers, waits until each is idle and listening, inserts `count`
/// operations on distinct volumes in one statement and returns the seconds from just before
/// that INSERT until the first 10 ms poll finding none pending or executing: the harness
/// `scripts/peers/pgqueuer_drain.py` runs for pgqueuer. Whatever else the table holds
/// (history) stays; every operation must end `completed`.
func measureDrain(url: String, client: PostgresClient, processes: Int, batch: Int, count: Int,
                  logger: Logger) async throws -> DrainTiming {
    let workers = try await WorkerProcesses.start(count: processes, arguments: [
        "--database-url", url, "--handler", "noop", "--batch", "\(batch)", "--concurrency", "\(max(2, batch * 2))",
    ])
    defer { Task { await workers.stop() } }
    try await waitUntilListening(client: client, workers: processes, logger: logger)
    let start = ContinuousClock.now
    try await client.query("""
        INSERT INTO volume_operations (type, volume_id)
        SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(count))
        """, logger: logger)
    let enqueued = ContinuousClock.now - start
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
    return DrainTiming(seconds: elapsed.seconds, enqueueSeconds: enqueued.seconds)
}

struct DrainTiming {
    /// From just before the INSERT to the last completion.
    let seconds: Double
    /// Of which the INSERT (its reply): what the enqueue costs, inside `seconds`.
    let enqueueSeconds: Double
}

/// Until `workers` sessions LISTEN for pending operations and sit idle (a worker prints
/// "ready" before it connects).
func waitUntilListening(client: PostgresClient, workers: Int, logger: Logger) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        let rows = try await client.query("""
            SELECT count(*)::int FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'idle' AND query ILIKE 'LISTEN%volume_operation_pending%'
            """, logger: logger)
        for try await listening in rows.decode(Int.self) where listening >= workers {
            try await Task.sleep(for: .milliseconds(200)) // past the first claim, which finds nothing
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw BenchError("the workers were not listening within 30 s")
}
