import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization

/// `volumed-bench latency`: at a steady enqueue rate, the time from an enqueue's commit to
/// the waiter receiving its `volume_operation_completed` notification.
struct LatencyBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "latency", abstract: "Enqueue→completion-notification latency.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Operations enqueued per second.") var rate: Int = 200
    @Option(help: "Seconds of steady load.") var seconds: Int = 10

    func run() async throws {
        let logger = benchLogger()
        try await database.withDatabase(logger: logger) { url, client in
            let workers = try await WorkerProcesses.start(count: 1, arguments: [
                "--database-url", url, "--handler", "noop", "--batch", "16", "--concurrency", "32",
            ])
            try await waitUntilListening(client: client, workers: 1, logger: logger)
            let committed = Timestamps()
            let notified = Timestamps()
            let notifiedAt = WallClockTimes()
            let total = rate * seconds
            let connection = try await PostgresConnection.connect(
                configuration: try DatabaseURL(url).connectionConfiguration(), id: 1, logger: logger)
            try await connection.listen(on: "volume_operation_completed") { notifications in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await notification in notifications {
                            let now = ContinuousClock.now
                            let wallClock = Date()
                            struct Payload: Decodable { let id: UUID }
                            if let id = try? JSONDecoder().decode(Payload.self, from: Data(notification.payload.utf8)).id {
                                notifiedAt.map.withLock { $0[id] = wallClock }
                                let done = notified.map.withLock { $0[id] = now; return $0.count }
                                if done == total { return }
                            }
                        }
                    }
                    let interval = Duration.seconds(1) / rate
                    var next = ContinuousClock.now
                    for _ in 0..<total {
                        try await Task.sleep(until: next, clock: .continuous)
                        next += interval
                        let rows = try await client.query(
                            "INSERT INTO volume_operations (type, volume_id) VALUES ('detach', gen_random_uuid()::text) RETURNING id",
                            logger: logger)
                        for try await id in rows.decode(UUID.self) {
                            let now = ContinuousClock.now
                            committed.map.withLock { $0[id] = now }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
            try await connection.close()
            await workers.stop()
            let starts = committed.map.withLock { $0 }
            let ends = notified.map.withLock { $0 }
            // A notification can arrive before the INSERT's reply is read; that counts as 0.
            let latencies = starts.compactMap { id, start in ends[id].map { max(0, ($0 - start).seconds * 1000) } }.sorted()
            guard !latencies.isEmpty else { throw BenchError("no latencies measured") }
            print(String(format: "operations %d at %d/s: enqueue→notification p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                         latencies.count, rate, latencies.percentile(0.5), latencies.percentile(0.99), latencies.last!))
            try await printStages(client: client, notifiedAt: notifiedAt.map.withLock { $0 }, logger: logger)
            let floor = try await NotifyFloor(configuration: try DatabaseURL(url).connectionConfiguration(),
                                              rate: rate, count: total, logger: logger).measure()
            for (name, values) in [("one notifying commit → listener, from its send", floor.one),
                                   ("enqueue → relay's two commits → listener", floor.relayed)] where !values.isEmpty {
                print(String(format: "PostgreSQL floor, same server and client library, %@: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                             name, values.percentile(0.5), values.percentile(0.99), values.last!))
            }
        }
    }
}

final class Timestamps: Sendable {
    let map = Mutex<[UUID: ContinuousClock.Instant]>([:])
}

final class WallClockTimes: Sendable {
    let map = Mutex<[UUID: Date]>([:])
}

/// Where the time goes, from the rows' own timestamps (each is `now()`, the start of the
/// statement's transaction, on the same machine's clock as `Date()`): enqueue → claim, claim →
/// completion (the claim's commit, the handler, the completion's statement reaching the
/// server), completion → the waiter woken (its commit and the notification's delivery).
private func printStages(client: PostgresClient, notifiedAt: [UUID: Date], logger: Logger) async throws {
    let rows = try await client.query("""
        SELECT id, extract(epoch FROM created_at)::float8, extract(epoch FROM started_at)::float8,
               extract(epoch FROM completed_at)::float8
        FROM volume_operations WHERE status = 'completed'
        """, logger: logger)
    var stages: [[Double]] = [[], [], []]
    for try await (id, created, started, completed) in rows.decode((UUID, Double, Double, Double).self) {
        guard let woken = notifiedAt[id]?.timeIntervalSince1970 else { continue }
        stages[0].append((started - created) * 1000)
        stages[1].append((completed - started) * 1000)
        stages[2].append((woken - completed) * 1000)
    }
    let names = ["enqueue → claim", "claim → completion", "completion → waiter woken"]
    for (name, values) in zip(names, stages) where !values.isEmpty {
        let sorted = values.sorted()
        print(String(format: "  %@: p50 %.2f ms, p99 %.2f ms", name, sorted.percentile(0.5), sorted.percentile(0.99)))
    }
}
