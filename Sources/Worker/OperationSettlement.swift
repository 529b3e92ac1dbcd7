import Primitives
import Foundation
import Logging
import PostgresNIO
import Schema

/// Running one claimed operation and writing its result: completed (with its mapping writes
/// in the same transaction), retried with backoff, failed, cancelled, or released.
extension QueueWorker {
    /// Runs `operation` under its claim. `earlier` is a claim of the same operation this worker
    /// still runs (see `InFlightRegistry`): it is stopped and awaited first.
    func execute(_ operation: ClaimedOperation, state: InFlightState, after earlier: InFlightState? = nil) async {
        var logger = self.logger
        logger[metadataKey: "operation"] = "\(operation.id)"
        logger[metadataKey: "type"] = "\(operation.type)"
        defer {
            registry.remove(token: operation.claimToken)
            state.markDone()
            metrics.inFlight(registry.count)
            doorbell.ring() // a slot is free
        }
        if let earlier {
            // The operation was rescued from this worker (its heartbeat stalled past the lease)
            // and claimed again here while the earlier handler still runs. That claim is gone:
            // stop its handler and let it finish (it writes nothing) before this one starts.
            logger.warning("claimed an operation again while its earlier handler still runs here; stopping that one first")
            metrics.leaseLost()
            earlier.markLeaseLost()
            await earlier.waitUntilDone()
        }
        let started = ContinuousClock.now

        let result: Result<OperationOutcome, any Error>
        if let handler = handlers[operation.type] {
            let context = OperationContext(operation: operation, logger: logger, database: client, state: state)
            // An unstructured task per handler so the heartbeat can stop this one handler when
            // its lease is lost; cancellation of this worker task is forwarded to it.
            let task = Task { try await handler.run(operation, context: context) }
            state.attach(task)
            result = await withTaskCancellationHandler { await task.result } onCancel: { task.cancel() }
        } else {
            result = .failure(QueueFailure.noHandler(type: operation.type))
        }
        state.settling = true

        let status = await settle(operation, result: result, state: state, logger: logger)
        if let status {
            metrics.finished(type: operation.type, status: status, seconds: (ContinuousClock.now - started).seconds)
        }
    }

    /// Writes the result; returns the status written, or nil when nothing was written.
    private func settle(_ operation: ClaimedOperation, result: Result<OperationOutcome, any Error>,
                        state: InFlightState, logger: Logger) async -> String? {
        if state.leaseLost {
            logger.warning("lease lost while running; another worker owns this operation now, leaving it alone")
            return nil
        }
        switch result {
        case .success(let outcome):
            return await writeWithRetry(operation, logger: logger) {
                try await self.complete(operation, outcome: outcome, logger: logger) ? "completed" : nil
            } onCommitFailure: { error in
                // The mapping writes themselves failed: that is the operation's failure.
                await self.settle(operation, result: .failure(error), state: state, logger: logger)
            }
        case .failure(let error):
            if isStopping || (error is CancellationError && !isRunning) {
                noteReleased(operation)
                return nil
            }
            if case OperationInterruption.leaseLost = error { return nil }
            if case OperationInterruption.cancelRequested = error {
                return await writeWithRetry(operation, logger: logger) {
                    try await self.updateHeld(QueueSQL.cancel(id: operation.id, token: operation.claimToken), logger: logger)
                        ? "cancelled" : nil
                }
            }
            let failure = classify(error)
            if shouldRetry(transient: failure.isTransient, attempts: operation.attempts, maxAttempts: operation.maxAttempts) {
                let delay = configuration.backoff.delay(afterAttempt: operation.attempts)
                logger.notice("transient failure; will retry",
                              metadata: ["error_code": "\(failure.code)", "error": "\(failure.message)",
                                         "attempt": "\(operation.attempts)", "retry_in_ms": "\(delay.wholeMilliseconds)"])
                metrics.retried(type: operation.type, code: failure.code)
                let status = await writeWithRetry(operation, logger: logger) {
                    try await self.updateHeld(
                        QueueSQL.retry(id: operation.id, token: operation.claimToken, delayMilliseconds: delay.wholeMilliseconds,
                                       error: failure.message, errorCode: failure.code),
                        logger: logger) ? "retried" : nil
                }
                if status != nil { scheduleWakeUp(after: delay) }
                return status
            }
            let message = failure.isTransient
                ? "gave up after \(operation.attempts) attempts (max_attempts): \(withoutRetryPromise(failure.message))"
                : failure.message
            logger.warning("operation failed", metadata: ["error_code": "\(failure.code)", "error": "\(message)"])
            return await writeWithRetry(operation, logger: logger) {
                try await self.updateHeld(
                    QueueSQL.fail(id: operation.id, token: operation.claimToken, error: message, errorCode: failure.code),
                    logger: logger) ? "failed" : nil
            }
        }
    }

    /// Maps any error to what the queue records. Errors that do not say whether a retry can
    /// help are treated as transient: `max_attempts` bounds them.
    func classify(_ error: any Error) -> any OperationFailure {
        if let failure = error as? any OperationFailure { return failure }
        if error is DecodingError {
            return QueueFailure.invalidRequest("the request does not have the expected shape: \(describe(decodingError: error))")
        }
        if error is DatabaseConnectionClosed {
            return QueueFailure(code: "database_error", message: "\(error)", isTransient: true)
        }
        if let error = error as? PSQLError {
            return QueueFailure(code: "database_error",
                                message: "a database statement failed (\(error.serverInfo?[.message] ?? "\(error.code)")); it will be retried",
                                isTransient: true)
        }
        return QueueFailure(code: "unexpected_error", message: "unexpected error: \(String(describing: error))", isTransient: true)
    }

    /// Completes `operation`: batched when there is nothing else to write, otherwise in one
    /// transaction with the handler's mapping writes. False: the lease was lost, nothing written.
    private func complete(_ operation: ClaimedOperation, outcome: OperationOutcome, logger: Logger) async throws -> Bool {
        if outcome.commit == nil, outcome.volumeId == nil, let response = outcome.response {
            return try await completer.complete(id: operation.id, token: operation.claimToken, response: response)
        }
        do {
            return try await client.inTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    QueueSQL.complete(id: operation.id, token: operation.claimToken,
                                      response: outcome.response, volumeId: outcome.volumeId),
                    logger: logger)
                var held = false
                for try await _ in rows { held = true }
                guard held else { throw OperationInterruption.leaseLost }
                if let commit = outcome.commit {
                    do {
                        try await commit(connection)
                    } catch {
                        throw CommitFailure(underlying: error)
                    }
                }
                return true
            }
        } catch OperationInterruption.leaseLost {
            return false
        }
    }

    /// Runs an UPDATE guarded by the lease; true if it changed the row.
    private func updateHeld(_ query: PostgresQuery, logger: Logger) async throws -> Bool {
        !(try await client.rows(query, logger: logger).isEmpty)
    }

    /// Result writes survive a database restart: retried while the lease can still be held.
    /// The heartbeat keeps extending the lease meanwhile (the operation is still registered).
    private func writeWithRetry(
        _ operation: ClaimedOperation, logger: Logger,
        _ write: @escaping @Sendable () async throws -> String?,
        onCommitFailure: (@Sendable (any Error) async -> String?)? = nil
    ) async -> String? {
        let deadline = ContinuousClock.now + configuration.leaseDuration
        var delay = Duration.milliseconds(50)
        while true {
            do {
                let status = try await write()
                if status == nil {
                    metrics.leaseLost()
                    logger.warning("lost the lease before the result was written; another worker owns this operation now")
                }
                return status
            } catch let failure as CommitFailure {
                return await onCommitFailure?(failure.underlying)
            } catch {
                if ContinuousClock.now + delay > deadline {
                    logger.error("could not write the operation's result; the rescuer will hand it to another worker",
                                 metadata: ["error": "\(String(reflecting: error))"])
                    return nil
                }
                logger.warning("writing the operation's result failed; retrying",
                               metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}

/// The handler's own mapping writes failed inside the completing transaction.
struct CommitFailure: Error {
    let underlying: any Error
}

func describe(decodingError error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return text.isEmpty ? "the request" : "field '\(text)'"
    }
    switch error {
    case .keyNotFound(let key, let context):
        let parent = context.codingPath.map(\.stringValue).joined(separator: ".")
        return "field '\(parent.isEmpty ? key.stringValue : parent + "." + key.stringValue)' is missing"
    case .typeMismatch(let type, let context):
        return "\(path(context)) must be \(describeType(type)) (\(context.debugDescription))"
    case .valueNotFound(let type, let context):
        return "\(path(context)) must be \(describeType(type)), not null"
    case .dataCorrupted(let context):
        return "\(path(context)) is invalid: \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

private func describeType(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
    case is Double.Type: return "a number"
    case is Bool.Type: return "true or false"
    default: return "\(type)"
    }
}
