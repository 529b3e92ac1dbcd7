import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization
import Worker

/// Settings that make tests fast: short leases, polls and backoff.
public func fastConfiguration(name: String = "test-\(UUID().uuidString.prefix(6))", appliance: String? = nil,
                       concurrency: Int = 4, batch: Int = 4) -> WorkerConfiguration {
    WorkerConfiguration(
        workerName: name, applianceVMId: appliance, concurrency: concurrency, claimBatchSize: batch,
        leaseDuration: .seconds(3), heartbeatInterval: .milliseconds(500), pollInterval: .milliseconds(200),
        rescueInterval: .milliseconds(300), shutdownGracePeriod: .seconds(2),
        backoff: Backoff(base: .milliseconds(20), cap: .milliseconds(200), jitter: 0.25))
}

/// A worker running in this process until `stop()`.
public struct RunningWorker: Sendable {
    public let worker: QueueWorker
    public let task: Task<Void, any Error>

    public func stop() async throws {
        worker.beginShutdown()
        try await task.value
    }
}

public func startWorker(_ db: TestDatabase, handlers: [OperationType: any OperationHandler],
                 configuration: WorkerConfiguration = fastConfiguration()) -> RunningWorker {
    let worker = QueueWorker(client: db.client, database: db.url, handlers: handlers,
                             configuration: configuration, logger: testLogger)
    return RunningWorker(worker: worker, task: Task { try await worker.run() })
}

/// Waits until `condition` holds, checking every 20 ms, up to `timeout`.
/// Throws `TimedOut` naming `what` when it does not.
public func eventually(timeout: Duration = .seconds(20), _ what: String = "condition",
                       _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TimedOut(what: what)
}

public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public var description: String { "timed out waiting for \(what)" }
}

/// Records what handlers saw, for assertions.
public final class Recorder: Sendable {
    public struct Run: Sendable {
        public let id: UUID
        public let volumeId: String?
        public let attempt: Int
        public let checkpoint: String?
        public let worker: String
    }
    public init() {}
    private let runs = Mutex<[Run]>([])

    public func record(_ operation: ClaimedOperation) {
        runs.withLock { $0.append(Run(id: operation.id, volumeId: operation.volumeId, attempt: operation.attempts,
                                      checkpoint: operation.checkpoint, worker: operation.claimedBy)) }
    }

    public var all: [Run] { runs.withLock { $0 } }
    public func runs(of id: UUID) -> [Run] { all.filter { $0.id == id } }
}

/// A handler made of a closure.
public struct ClosureHandler: OperationHandler {
    let body: @Sendable (ClaimedOperation, OperationContext) async throws -> OperationOutcome
    public init(_ body: @escaping @Sendable (ClaimedOperation, OperationContext) async throws -> OperationOutcome) {
        self.body = body
    }
    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        try await body(operation, context)
    }
}

public func insertOperation(_ db: TestDatabase, type: String = "detach", volume: String? = volumeA, vm: String? = nil,
                     request: String = "{}", maxAttempts: Int = 5) async throws -> UUID {
    let volumeSQL = volume.map { "'\($0)'" } ?? "NULL"
    let vmSQL = vm.map { "'\($0)'" } ?? "NULL"
    let id = try await db.scalar("""
        INSERT INTO volume_operations (type, volume_id, vm_id, request, max_attempts)
        VALUES ('\(type)', \(volumeSQL), \(vmSQL), '\(request)', \(maxAttempts)) RETURNING id::text
        """)
    return UUID(uuidString: id!)!
}

public func status(_ db: TestDatabase, _ id: UUID) async throws -> String? {
    try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'")
}

public func randomVolumeId() -> String { UUID().uuidString.lowercased() }

public let volumeA = "3f9c2a10-8b1e-4c6d-9f00-1a2b3c4d5e6f"
public let volumeB = "4a0d3b21-9c2f-4d7e-8011-2b3c4d5e6f70"
public let applianceVM = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
public let otherVM = "7b2c3d4e-5f60-4b7c-9d8e-1f2a3b4c5d6e"

// MARK: Playing a worker by hand, in SQL

/// The SET clause with which a test claims a row by hand, as `volume_operations_claim_with_token`
/// would for `worker`, with the claim token `token` (the row keeps its digest).
public func sqlClaim(worker: String = "w", token: String = "token-of-w", lease: String = "1 minute") -> String {
    """
    status = 'executing', claimed_by = '\(worker)', lease_expires_at = now() + interval '\(lease)',
    claim_token = volume_operations_claim_digest('\(token)')
    """
}

/// The SET item that proves the claim `token`: without it the database refuses any change to
/// an executing row but a cancel request (migrations/0005_claim_token.sql).
public func sqlProof(_ token: String = "token-of-w") -> String {
    "claim_token = '\(token)'"
}

/// Runs `sql` with the table's triggers off (replica mode, for this one statement; the tests
/// connect as a superuser): for set-ups no client may make, such as history moved into the past
/// or a takeover behind a running worker's back.
public func withTriggersOff(_ db: TestDatabase, _ sql: String) async throws {
    try await db.query("DO $by_hand$ BEGIN SET LOCAL session_replication_role = replica; \(sql); END $by_hand$")
}
