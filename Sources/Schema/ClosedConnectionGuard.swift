import Logging
import PostgresNIO
import Synchronization

/// The connection a statement ran on closed before the statement finished (a PostgreSQL
/// restart, a network cut). Whether the statement took effect is unknown, as with any lost
/// reply: callers retry statements that are safe to repeat.
public struct DatabaseConnectionClosed: Error, CustomStringConvertible, Sendable {
    public var description: String {
        "the database connection closed while a statement was running (PostgreSQL restarted or the network dropped); it will be retried"
    }
}

extension PostgresConnection {
    /// Runs `body` on this connection, but fails with `DatabaseConnectionClosed` as soon as
    /// the connection closes, instead of waiting for an answer that may never come.
    ///
    /// Why: PostgresNIO 1.33.2 writes each statement to the channel without a write promise
    /// (`PostgresClient.query`, `PostgresConnection.query`). When the server has just closed
    /// the connection — a pooled connection leased in the instant PostgreSQL restarts — the
    /// channel's handlers are already gone, the write fails silently and the statement's
    /// promise is never completed: the caller waits forever, and cancelling it does not help.
    /// A volumed worker stuck that way keeps its leases alive with the heartbeat while the
    /// operation never finishes. (`DatabaseRestartTests` reproduces it.) The `body` left
    /// waiting is abandoned; it holds no pool lease once this returns.
    public func failingWhenClosed<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let running = RunningBody()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                let outcome = FirstOutcome(continuation)
                // A look every `closedCheckInterval` rather than a `closeFuture` callback: a
                // future keeps every callback until it completes, and a pooled connection runs
                // millions of statements in its life.
                let watch = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: Self.closedCheckInterval)
                        if isClosed {
                            outcome.resume(with: .failure(DatabaseConnectionClosed()))
                            return
                        }
                    }
                }
                running.start {
                    let result: Swift.Result<Result, any Error>
                    do {
                        result = .success(try await body(self))
                    } catch {
                        result = .failure(error)
                    }
                    watch.cancel()
                    outcome.resume(with: result)
                }
            }
        } onCancel: {
            // A statement already sent still runs to its end; waiting for a lease stops.
            running.cancel()
        }
    }

    /// How soon a statement stranded on a closed connection gives up.
    static let closedCheckInterval = Duration.milliseconds(250)
}

extension PostgresClient {
    /// `withConnection` guarded by `PostgresConnection.failingWhenClosed`.
    public func withGuardedConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in
            try await connection.failingWhenClosed(body)
        }
    }

    /// All rows of `query`, on a guarded connection.
    public func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        try await withGuardedConnection { connection in
            try await connection.query(query, logger: logger).collect()
        }
    }

    /// `rows`, each decoded with `decode`.
    public func decodedRows<T>(_ query: PostgresQuery, logger: Logger, _ decode: (PostgresRow) throws -> T) async throws -> [T] {
        try await rows(query, logger: logger).map(decode)
    }
}

extension PostgresClient {
    /// `withTransaction` on a guarded connection, from BEGIN to COMMIT. A transaction cut off
    /// is rolled back unless its COMMIT had arrived (see `DatabaseConnectionClosed`).
    public func inTransaction<Result: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withGuardedConnection { connection in
            try await connection.withTransaction(logger: logger) { try await body($0) }
        }
    }
}

/// Resumes a continuation with whichever outcome comes first.
private final class FirstOutcome<Result: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Result, any Error>?>

    init(_ continuation: CheckedContinuation<Result, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resume(with result: Swift.Result<Result, any Error>) {
        let waiting = continuation.withLock { value -> CheckedContinuation<Result, any Error>? in
            defer { value = nil }
            return value
        }
        waiting?.resume(with: result)
    }
}

/// The task running a guarded body, for cancellation that arrives from the caller.
private final class RunningBody: Sendable {
    private let state = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))

    func start(_ operation: @escaping @Sendable () async -> Void) {
        let task = Task(operation: operation)
        let cancelNow = state.withLock { state -> Bool in
            state.task = task
            return state.cancelled
        }
        if cancelNow { task.cancel() }
    }

    func cancel() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}
