import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization

/// What a running handler may ask of the queue: its checkpoint, the database, and whether
/// it should stop between steps.
public final class OperationContext: Sendable {
    public let operation: ClaimedOperation
    public let logger: Logger
    /// The pool, for handlers that read or write their own tables before the final commit.
    public let database: PostgresClient
    let state: InFlightState

    init(operation: ClaimedOperation, logger: Logger, database: PostgresClient, state: InFlightState) {
        self.operation = operation
        self.logger = logger
        self.database = database
        self.state = state
    }

    /// The checkpoint an earlier attempt saved, decoded as `T`, or nil.
    public func checkpoint<T: Decodable>(as type: T.Type) throws -> T? {
        let text = state.checkpoint
        guard let text, !text.isEmpty, text != "null" else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw QueueFailure(
                code: "invalid_checkpoint",
                message: "operation \(operation.id) has a checkpoint this volumed cannot read (\(error)); cancel it and enqueue it again")
        }
    }

    /// Saves progress before (or after) a side effect, so a rescued operation resumes here.
    /// Throws `OperationInterruption.leaseLost` if this worker no longer holds the operation.
    public func saveCheckpoint<T: Encodable>(_ value: T) async throws {
        try checkInterruption(allowCancel: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        let rows = try await database.rows(
            QueueSQL.saveCheckpoint(id: operation.id, token: operation.claimToken, checkpoint: text), logger: logger)
        guard !rows.isEmpty else {
            state.markLeaseLost()
            throw OperationInterruption.leaseLost
        }
        state.checkpoint = text
    }

    /// Call between steps: throws if cancellation was requested or the lease was lost.
    public func checkCancellation() throws {
        try checkInterruption(allowCancel: false)
    }

    private func checkInterruption(allowCancel: Bool) throws {
        if state.leaseLost { throw OperationInterruption.leaseLost }
        if !allowCancel && state.cancelRequested { throw OperationInterruption.cancelRequested }
        try Task.checkCancellation()
    }
}

/// Shared between a running handler, the heartbeat and the worker.
final class InFlightState: Sendable {
    private struct Values {
        var checkpoint: String?
        var cancelRequested = false
        var leaseLost = false
        var settling = false
        var task: Task<OperationOutcome, any Error>?
        var done = false
        var waitingForDone: [CheckedContinuation<Void, Never>] = []
    }
    private let values: Mutex<Values>

    init(checkpoint: String?) {
        values = Mutex(Values(checkpoint: checkpoint))
    }

    var checkpoint: String? {
        get { values.withLock { $0.checkpoint } }
        set { values.withLock { $0.checkpoint = newValue } }
    }
    var cancelRequested: Bool { values.withLock { $0.cancelRequested } }
    var leaseLost: Bool { values.withLock { $0.leaseLost } }

    func markCancelRequested() { values.withLock { $0.cancelRequested = true } }

    /// The handler is done and its result is being written; the heartbeat leaves it alone.
    var settling: Bool {
        get { values.withLock { $0.settling } }
        set { values.withLock { $0.settling = newValue } }
    }

    /// The lease is gone: stop the handler at its next await.
    func markLeaseLost() {
        let task = values.withLock { values -> Task<OperationOutcome, any Error>? in
            values.leaseLost = true
            return values.task
        }
        task?.cancel()
    }

    /// The handler has returned and its result, if any, is written: the claim is over here.
    func markDone() {
        let waiting = values.withLock { values -> [CheckedContinuation<Void, Never>] in
            values.done = true
            defer { values.waitingForDone = [] }
            return values.waitingForDone
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns once `markDone` has been called.
    func waitUntilDone() async {
        await withCheckedContinuation { continuation in
            let doneAlready = values.withLock { values -> Bool in
                if values.done { return true }
                values.waitingForDone.append(continuation)
                return false
            }
            if doneAlready { continuation.resume() }
        }
    }

    func attach(_ task: Task<OperationOutcome, any Error>) {
        let cancelNow = values.withLock { values -> Bool in
            values.task = task
            return values.leaseLost
        }
        if cancelNow { task.cancel() }
    }
}
