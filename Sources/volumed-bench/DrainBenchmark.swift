import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Schema

/// `volumed-bench drain`: how fast the queue engine drains no-op operations on distinct
/// volumes, with 1 and 2 worker processes and claim batches of 1, 10 and 100.
struct DrainBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain", abstract: "Drain throughput with no-op handlers.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Operations per run (batch 1 runs a quarter of them).") var operations: Int = 20_000
    @Option(help: "Claim batch sizes, comma-separated.") var batches: String = "1,10,100"
    @Option(help: "Worker process counts, comma-separated.") var processes: String = "1,2"

    func run() async throws {
        let logger = benchLogger()
        let batchSizes = batches.split(separator: ",").compactMap { Int($0) }
        let processCounts = processes.split(separator: ",").compactMap { Int($0) }
        try await database.withDatabase(logger: logger) { url, client in
            print("processes  batch  operations  seconds   ops/s")
            for processCount in processCounts {
                for batch in batchSizes {
                    let count = batch == 1 ? operations / 4 : operations
                    let seconds = try await drainOnce(url: url, client: client, processes: processCount,
                                                      batch: batch, count: count, logger: logger)
                    print(String(format: "%9d  %5d  %10d  %7.2f  %7.0f", processCount, batch, count, seconds, Double(count) / seconds))
                }
            }
        }
    }

    private func drainOnce(url: String, client: PostgresClient, processes: Int, batch: Int, count: Int,
                           logger: Logger) async throws -> Double {
        try await client.query("TRUNCATE volume_operations, volume_operation_events", logger: logger)
        try await client.query("VACUUM ANALYZE volume_operations", logger: logger)
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
        let elapsed = (ContinuousClock.now - start)
        await workers.stop()
        let failed = try await client.query("SELECT count(*)::int FROM volume_operations WHERE status <> 'completed'", logger: logger)
        for try await value in failed.decode(Int.self) where value != 0 {
            throw BenchError("\(value) operations did not complete")
        }
        let (seconds, atto) = elapsed.components
        return Double(seconds) + Double(atto) / 1e18
    }
}
