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
    @Option(help: "Operations per run.") var operations: Int = 20_000
    @Option(help: "Claim batch sizes, comma-separated.") var batches: String = "1,10,100"
    @Option(help: "Worker process counts, comma-separated.") var processes: String = "1,2"

    func run() async throws {
        let logger = benchLogger()
        let batchSizes = batches.split(separator: ",").compactMap { Int($0) }
        let processCounts = processes.split(separator: ",").compactMap { Int($0) }
        try await database.withDatabase(logger: logger) { url, client in
            print("processes  batch  operations  seconds   ops/s  enqueue s")
            for processCount in processCounts {
                for batch in batchSizes {
                    let drain = try await drainOnce(url: url, client: client, processes: processCount,
                                                    batch: batch, count: operations, logger: logger)
                    print(String(format: "%9d  %5d  %10d  %7.2f  %7.0f  %9.2f", processCount, batch, operations,
                                 drain.seconds, Double(operations) / drain.seconds, drain.enqueueSeconds))
                }
            }
        }
    }

    private func drainOnce(url: String, client: PostgresClient, processes: Int, batch: Int, count: Int,
                           logger: Logger) async throws -> DrainTiming {
        try await client.query("TRUNCATE volume_operations, volume_operation_events", logger: logger)
        try await client.query("VACUUM ANALYZE volume_operations", logger: logger)
        return try await measureDrain(url: url, client: client, processes: processes, batch: batch, count: count, logger: logger)
    }
}
