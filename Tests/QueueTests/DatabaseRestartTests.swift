import DevServices
import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization
import TestSupport
import Testing
import VolumeClient
import Worker

/// PostgreSQL restarting (an immediate stop, as a crash, then a start) under pooled
/// statements and under running workers. PostgresNIO 1.33.2 can leave a statement waiting
/// forever when its pooled connection closes in the instant it is sent; these tests hammer
/// that instant (see `PostgresConnection.failingWhenClosed`).
@Suite struct DatabaseRestartTests {
    @Test func pooledStatementsFailInsteadOfHangingWhenPostgreSQLRestarts() async throws {
        try await RestartableDatabase.with { database in
            // Not `withRunning`: a statement that did hang would hold its lease and keep the
            // pool from shutting down; this test must fail, not hang.
            let client = database.makeClient(maximumConnections: 8)
            let running = Task { await client.run() }
            defer { running.cancel() }
            let progress = LoopProgress(loops: 12)
            let loops = (0..<12).map { index in
                Task {
                    while !Task.isCancelled {
                        do {
                            _ = try await client.rows("SELECT pg_sleep(0.01)", logger: testLogger)
                            progress.succeeded(index)
                        } catch {
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
            }
            defer { loops.forEach { $0.cancel() } }
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...700)))
                try await database.server.restart(downtime: .milliseconds(Int.random(in: 0...400)))
            }
            let restarted = ContinuousClock.now
            try await eventually(timeout: .seconds(10), "every statement loop to succeed again after the last restart") {
                progress.allSucceeded(since: restarted)
            }
        }
    }

    @Test func workersFinishEveryOperationAcrossPostgreSQLRestarts() async throws {
        try await RestartableDatabase.with { database in
            let client = database.makeClient(maximumConnections: 40)
            let running = Task { await client.run() }
            defer { running.cancel() }
            // Each run saves a checkpoint, reads, and writes in the completing transaction:
            // every kind of statement a real handler makes.
            let handler = ClosureHandler { _, context in
                try await context.saveCheckpoint(["step": "started"])
                _ = try await context.database.rows("SELECT count(*) FROM volume_operations", logger: testLogger)
                return try .completed(["done": true]) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(42)", logger: testLogger)
                }
            }
            let stopped = Counter()
            let workers = (0..<2).map { _ in
                QueueWorker(client: client, database: database.url, handlers: ["detach": handler],
                            configuration: fastConfiguration(concurrency: 8, batch: 8), logger: testLogger)
            }
            for worker in workers {
                Task {
                    try? await worker.run()
                    stopped.add()
                }
            }
            let inserted = Counter()
            let feeder = Task {
                while !Task.isCancelled {
                    let sql: PostgresQuery = "INSERT INTO volume_operations (type, volume_id, max_attempts) VALUES ('detach', \(UUID().uuidString.lowercased()), 50)"
                    if (try? await client.rows(sql, logger: testLogger)) != nil { inserted.add() }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...1000)))
                try await database.server.restart(downtime: .milliseconds(Int.random(in: 0...500)))
            }
            try await Task.sleep(for: .milliseconds(500))
            feeder.cancel()
            // An insert still in flight (a pool reconnecting holds it) would land after the
            // drain is judged: wait until the feeder has really stopped.
            await feeder.value
            #expect(inserted.count > 100)
            try await eventually(timeout: .seconds(30), "every operation to finish") {
                try await database.count(client, "SELECT count(*) FROM volume_operations WHERE status IN ('pending', 'executing')") == 0
            }
            let unfinished = try await client.rows(
                "SELECT format('%s %s attempts %s: %s %s', id, status, attempts, error_code, error) FROM volume_operations WHERE status <> 'completed'",
                logger: testLogger).map { try $0.decode(String.self) }
            #expect(unfinished == [])
            for worker in workers { worker.beginShutdown() }
            try await eventually(timeout: .seconds(10), "both workers to stop") { stopped.count == workers.count }
        }
    }
}

extension DatabaseRestartTests {
    /// An enqueue cut off by a restart was not judged by the server: it must surface as a
    /// connection error (which the HTTP API answers 503 and callers retry), never as
    /// `.rejected` (400, "fix your request"), and a retry with the same key gets one row.
    @Test func anEnqueueCutOffByARestartIsAConnectionErrorNeverARejection() async throws {
        try await RestartableDatabase.with { database in
            let client = database.makeClient(maximumConnections: 8)
            let running = Task { await client.run() }
            defer { running.cancel() }
            let volumes = VolumeClient(client: client, database: database.url, logger: testLogger)
            defer { volumes.close() }
            let misjudged = Notes()
            let cutOff = Counter()
            let keys = (0..<8).map { "restart-\($0)" }
            let loops = keys.map { key in
                Task {
                    while !Task.isCancelled {
                        do {
                            _ = try await volumes.enqueue(EnqueueRequest(type: "detach", volumeId: volumeA, idempotencyKey: key))
                        } catch let error as VolumeClientError {
                            misjudged.add("\(error.kind): \(error)")
                        } catch {
                            cutOff.add()
                        }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
            }
            defer { loops.forEach { $0.cancel() } }
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...500)))
                try await database.server.restart(downtime: .milliseconds(Int.random(in: 100...400)))
            }
            try await Task.sleep(for: .milliseconds(500))
            loops.forEach { $0.cancel() }
            #expect(cutOff.count > 0, "no enqueue was cut off by the restarts, so nothing was tested")
            #expect(misjudged.all == [])
            #expect(try await database.count(client, "SELECT count(*) FROM volume_operations") == keys.count)
        }
    }
}

/// A throwaway cluster of its own (the tests restart it), with `synchronous_commit` on so a
/// restart loses no commit the test was told about.
private struct RestartableDatabase: Sendable {
    let server: EphemeralPostgres
    let url: DatabaseURL

    static func with(_ body: @Sendable (RestartableDatabase) async throws -> Void) async throws {
        let server = try await EphemeralPostgres.start(
            settings: EphemeralPostgres.testSettings.merging(["synchronous_commit": "on"]) { _, new in new })
        defer { server.stop() }
        try await server.createDatabase("restarts")
        let url = try DatabaseURL(server.url(database: "restarts"))
        try await PostgresClient.withRunning(url, maximumConnections: 2, logger: testLogger) { client in
            _ = try await Migrator(logger: testLogger).migrate(client)
        }
        try await body(RestartableDatabase(server: server, url: url))
    }

    func makeClient(maximumConnections: Int) -> PostgresClient {
        var configuration = try! url.clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        return PostgresClient(configuration: configuration, backgroundLogger: testLogger)
    }

    func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
        try await client.rows(PostgresQuery(unsafeSQL: sql), logger: testLogger).first?.decode(Int.self) ?? -1
    }
}

/// When each statement loop last succeeded.
private final class LoopProgress: Sendable {
    private let last: Mutex<[Int: ContinuousClock.Instant]>
    private let loops: Int

    init(loops: Int) {
        self.loops = loops
        last = Mutex([:])
    }

    func succeeded(_ loop: Int) { last.withLock { $0[loop] = .now } }

    func allSucceeded(since instant: ContinuousClock.Instant) -> Bool {
        last.withLock { last in (0..<loops).allSatisfy { (last[$0] ?? instant) > instant } }
    }
}

private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

private final class Notes: Sendable {
    private let items = Mutex<[String]>([])
    func add(_ item: String) { items.withLock { $0.append(item) } }
    var all: [String] { items.withLock { $0 } }
}
