import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `volumed-bench memory`: a worker process's resident memory idle, and with `inFlight`
/// operations running at once (handlers that hold each operation for 10 s).
struct MemoryBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "Worker RSS idle and with many operations in flight.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Operations in flight at once.") var inFlight: Int = 500

    func run() async throws {
        let logger = benchLogger()
        try await database.withDatabase(logger: logger) { url, client in
            try await client.query("TRUNCATE volume_operations, volume_operation_events", logger: logger)
            let workers = try await WorkerProcesses.start(count: 1, arguments: [
                "--database-url", url, "--handler", "hold", "--batch", "100", "--concurrency", "\(inFlight)",
            ])
            let pid = workers.children[0].pid
            try await Task.sleep(for: .seconds(2))
            let idle = try residentKiB(pid)
            try await client.query("""
                INSERT INTO volume_operations (type, volume_id)
                SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(inFlight))
                """, logger: logger)
            let deadline = ContinuousClock.now + .seconds(8)
            var executing = 0
            while executing < inFlight && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                let rows = try await client.query("SELECT count(*)::int FROM volume_operations WHERE status = 'executing'", logger: logger)
                for try await value in rows.decode(Int.self) { executing = value }
            }
            let busy = try residentKiB(pid)
            await workers.stop()
            guard executing == inFlight else { throw BenchError("only \(executing) of \(inFlight) operations were in flight") }
            print(String(format: "worker RSS idle %.1f MiB; with %d operations in flight %.1f MiB (%.1f KiB per operation)",
                         Double(idle) / 1024, inFlight, Double(busy) / 1024, Double(busy - idle) / Double(inFlight)))
        }
    }

    private func residentKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(whereSeparator: \.isWhitespace)[1]) else {
            throw BenchError("no VmRSS in /proc/\(pid)/status")
        }
        return kib
    }
}
