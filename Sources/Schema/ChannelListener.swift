import Logging
import PostgresNIO

/// LISTENs on one channel over a dedicated session connection (LISTEN cannot share a pooled
/// or PgBouncer-transaction connection) and reconnects after any failure.
///
/// Notifications are lost while reconnecting, so `onListening` runs after every successful
/// LISTEN: callers re-read their state there (the worker claims, a waiter re-reads its row).
/// The connection never holds a transaction open, so it cannot fill the notification queue.
public struct ChannelListener: Sendable {
    public let database: DatabaseURL
    public let channel: String
    public let logger: Logger
    public var reconnectDelay: Duration

    public init(database: DatabaseURL, channel: String, logger: Logger, reconnectDelay: Duration = .milliseconds(500)) {
        self.database = database
        self.channel = channel
        self.logger = logger
        self.reconnectDelay = reconnectDelay
    }

    /// Runs until the task is cancelled.
    public func run(
        onListening: @escaping @Sendable () async -> Void,
        onNotification: @escaping @Sendable (String) async -> Void
    ) async {
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try database.connectionConfiguration(), id: connectionID, logger: logger)
                do {
                    try await connection.listen(on: channel) { notifications in
                        await onListening()
                        for try await notification in notifications {
                            await onNotification(notification.payload)
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("LISTEN connection failed; reconnecting",
                               metadata: ["channel": "\(channel)", "error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: reconnectDelay)
        }
    }
}
