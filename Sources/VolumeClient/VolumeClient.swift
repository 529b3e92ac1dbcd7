import Foundation
import Logging
import PostgresNIO
import Schema

/// Enqueue operations and wait for them, race-free, from Swift.
///
/// Waiting follows CONTRACT §4: LISTEN on `volume_operation_completed` first, then read the
/// row, then re-read it on every notification for it and on every poll tick. One LISTEN
/// connection serves all waiters of a client.
public final class VolumeClient: Sendable {
    public let client: PostgresClient
    let logger: Logger
    let watcher: CompletionWatcher

    public init(client: PostgresClient, database: DatabaseURL, logger: Logger) {
        self.client = client
        self.logger = logger
        self.watcher = CompletionWatcher(
            listener: ChannelListener(database: database, channel: "volume_operation_completed", logger: logger))
    }

    /// Stops the shared LISTEN connection.
    public func close() { watcher.stop() }

    /// Enqueues through `volume_operation_enqueue`; a repeated idempotency key returns the
    /// first operation's id. A rejected row throws `VolumeClientError.rejected` naming the field;
    /// a key already used for different parameters throws `.conflict`. When the database cannot
    /// be reached the connection error is thrown as it is: the row was not judged, only not
    /// delivered, and the caller may retry.
    public func enqueue(_ request: EnqueueRequest) async throws -> UUID {
        do {
            let rows = try await client.rows(
                QueueSQL.enqueue(type: request.type.rawValue, volumeId: request.volumeId, vmId: request.vmId, request: request.request,
                                 idempotencyKey: request.idempotencyKey, priority: request.priority, maxAttempts: request.maxAttempts),
                logger: logger)
            for row in rows { return try row.decode(UUID.self) }
            throw VolumeClientError(kind: .rejected, message: "volume_operation_enqueue returned no id")
        } catch let error as PSQLError where error.serverInfo != nil {
            // unique_violation: the idempotency key already names another operation.
            let kind: VolumeClientError.Kind = databaseSQLState(error) == "23505" ? .conflict : .rejected
            throw VolumeClientError(kind: kind, message: "operation rejected: \(ConstraintMessages.explain(error))")
        }
    }

    public func operation(_ id: UUID) async throws -> OperationRecord? {
        try await client.decodedRows(QueueSQL.operation(id), logger: logger, OperationRecord.init).first
    }

    public struct Filter: Sendable {
        public var type: String?
        public var status: String?
        public var volumeId: String?
        public var vmId: String?
        public var limit: Int
        public init(type: String? = nil, status: String? = nil, volumeId: String? = nil, vmId: String? = nil, limit: Int = 50) {
            self.type = type
            self.status = status
            self.volumeId = volumeId
            self.vmId = vmId
            self.limit = limit
        }
    }

    /// Newest first.
    public func operations(_ filter: Filter) async throws -> [OperationRecord] {
        let query = QueueSQL.operations(type: filter.type, status: filter.status, volumeId: filter.volumeId, vmId: filter.vmId,
                                        limit: max(1, min(filter.limit, 1000)))
        return try await client.decodedRows(query, logger: logger, OperationRecord.init)
    }

    /// Cancels a pending operation at once, or asks the worker to stop an executing one
    /// between steps. Returns the status after the call.
    public func cancel(_ id: UUID) async throws -> OperationStatus {
        do {
            for row in try await client.rows(QueueSQL.cancel(id), logger: logger) {
                return OperationStatus(rawValue: try row.decode(String.self)) ?? .pending
            }
        } catch let error as PSQLError where databaseSQLState(error) == "P0002" {
            throw VolumeClientError(kind: .notFound, message: "no operation with id \(id)")
        }
        throw VolumeClientError(kind: .notFound, message: "no operation with id \(id)")
    }

    /// Returns the operation once it is terminal (completed, failed or cancelled); at once if
    /// it already is. Throws `.timeout` after `timeout`, `.notFound` for an unknown id.
    public func waitForCompletion(_ id: UUID, timeout: Duration, pollInterval: Duration = .seconds(1)) async throws -> OperationRecord {
        let deadline = ContinuousClock.now + timeout
        let bell = Doorbell()
        // Subscribe, then make sure LISTEN is active, then read: a completion committed at any
        // point after this line rings the bell or is seen by the read.
        let subscription = watcher.subscribe(id, bell)
        defer { watcher.unsubscribe(id, subscription) }
        await watcher.ensureListening(timeout: min(timeout, .seconds(5)))
        while true {
            guard let record = try await operation(id) else {
                throw VolumeClientError(kind: .notFound, message: "no operation with id \(id)")
            }
            if record.status.isTerminal { return record }
            let now = ContinuousClock.now
            guard now < deadline else {
                throw VolumeClientError(kind: .timeout,
                                        message: "operation \(id) is still \(record.status.rawValue) after \(timeout); it keeps running, wait again or look at `volumed ops`")
            }
            await bell.wait(timeout: min(pollInterval, deadline - now))
        }
    }
}
