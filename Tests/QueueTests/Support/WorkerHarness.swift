import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization
import Testing
@testable import Worker

/// Settings that make tests fast: short leases, polls and backoff.
func fastConfiguration(name: String = "test-\(UUID().uuidString.prefix(6))", appliance: String? = nil,
                       concurrency: Int = 4, batch: Int = 4) -> WorkerConfiguration {
    WorkerConfiguration(
        workerName: name, applianceVMId: appliance, concurrency: concurrency, claimBatchSize: batch,
        leaseDuration: .seconds(3), heartbeatInterval: .milliseconds(500), pollInterval: .milliseconds(200),
        rescueInterval: .milliseconds(300), shutdownGracePeriod: .seconds(2),
        backoff: Backoff(base: .milliseconds(20), cap: .milliseconds(200), jitter: 0.25))
}

/// A worker running in this process until `stop()`.
struct RunningWorker: Sendable {
    let worker: QueueWorker
    let task: Task<Void, any Error>

    func stop() async throws {
        worker.beginShutdown()
        try await task.value
    }
}

func startWorker(_ db: TestDatabase, handlers: [OperationType: any OperationHandler],
                 configuration: WorkerConfiguration = fastConfiguration()) -> RunningWorker {
    let worker = QueueWorker(client: db.client, database: db.url, handlers: handlers,
                             configuration: configuration, logger: testLogger)
    return RunningWorker(worker: worker, task: Task { try await worker.run() })
}

/// Waits until `condition` holds, checking every 20 ms, up to `timeout`.
func eventually(timeout: Duration = .seconds(20), _ what: String = "condition",
                sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
}

/// Records what handlers saw, for assertions.
final class Recorder: Sendable {
    struct Run: Sendable {
        let id: UUID
        let volumeId: String?
        let attempt: Int
        let checkpoint: String?
        let worker: String
    }
    private let runs = Mutex<[Run]>([])

    func record(_ operation: ClaimedOperation) {
        runs.withLock { $0.append(Run(id: operation.id, volumeId: operation.volumeId, attempt: operation.attempts,
                                      checkpoint: operation.checkpoint, worker: operation.claimedBy)) }
    }

    var all: [Run] { runs.withLock { $0 } }
    func runs(of id: UUID) -> [Run] { all.filter { $0.id == id } }
}

/// A handler made of a closure.
struct ClosureHandler: OperationHandler {
    let body: @Sendable (ClaimedOperation, OperationContext) async throws -> OperationOutcome
    init(_ body: @escaping @Sendable (ClaimedOperation, OperationContext) async throws -> OperationOutcome) {
        self.body = body
    }
    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        try await body(operation, context)
    }
}

func insertOperation(_ db: TestDatabase, type: String = "detach", volume: String? = volumeA, vm: String? = nil,
                     request: String = "{}", maxAttempts: Int = 5) async throws -> UUID {
    let volumeSQL = volume.map { "'\($0)'" } ?? "NULL"
    let vmSQL = vm.map { "'\($0)'" } ?? "NULL"
    let id = try await db.scalar("""
        INSERT INTO volume_operations (type, volume_id, vm_id, request, max_attempts)
        VALUES ('\(type)', \(volumeSQL), \(vmSQL), '\(request)', \(maxAttempts)) RETURNING id::text
        """)
    return UUID(uuidString: id!)!
}

func status(_ db: TestDatabase, _ id: UUID) async throws -> String? {
    try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'")
}

func randomVolumeId() -> String { UUID().uuidString.lowercased() }
