import Foundation
import Operations
import PostgresNIO
import Schema
import Worker

/// Handlers with no CloudStack behind them, for benchmarks and multi-process tests.
enum SyntheticHandler: String, CaseIterable, Sendable {
    /// Completes at once: measures the queue engine alone.
    case noop
    /// Records each run in `handler_runs` (which the test creates), then completes.
    case record
    /// Saves a checkpoint naming this worker, records the run with the checkpoint it found,
    /// then sleeps long enough to be killed; a run that finds a checkpoint completes at once.
    case checkpointSleep = "checkpoint-sleep"
    /// Stays in flight for 10 seconds, then completes: holds many operations at once.
    case hold

    func handler() -> any OperationHandler {
        switch self {
        case .noop: return NoopHandler()
        case .record: return RecordingHandler()
        case .checkpointSleep: return CheckpointSleepHandler()
        case .hold: return HoldHandler()
        }
    }

    func handlers() -> [OperationType: any OperationHandler] {
        Dictionary(uniqueKeysWithValues: OperationRegistry.types.map { ($0, handler()) })
    }
}

struct NoopHandler: OperationHandler {
    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        OperationOutcome(response: "{}")
    }
}

struct HoldHandler: OperationHandler {
    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        try await Task.sleep(for: .seconds(10))
        return OperationOutcome(response: "{}")
    }
}

struct RecordingHandler: OperationHandler {
    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        try await context.database.query("""
            INSERT INTO handler_runs (operation_id, volume_id, worker, checkpoint_seen, started_at)
            VALUES (\(operation.id), \(operation.volumeId), \(operation.claimedBy), \(operation.checkpoint)::jsonb, clock_timestamp())
            """, logger: context.logger)
        // A little work, so runs of one volume would overlap if ordering were broken.
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...2)))
        try await context.database.query("""
            UPDATE handler_runs SET finished_at = clock_timestamp()
            WHERE operation_id = \(operation.id) AND worker = \(operation.claimedBy)
            """, logger: context.logger)
        return OperationOutcome(response: "{}")
    }
}

struct CheckpointSleepHandler: OperationHandler {
    struct Progress: Codable { let by: String }

    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        try await context.database.query("""
            INSERT INTO handler_runs (operation_id, volume_id, worker, checkpoint_seen, started_at)
            VALUES (\(operation.id), \(operation.volumeId), \(operation.claimedBy), \(operation.checkpoint)::jsonb, clock_timestamp())
            """, logger: context.logger)
        if let earlier = try context.checkpoint(as: Progress.self) {
            return try .completed(["resumed_from": earlier.by])
        }
        try await context.saveCheckpoint(Progress(by: operation.claimedBy))
        try await Task.sleep(for: .seconds(120))
        return try .completed(["resumed_from": "nobody"])
    }
}
