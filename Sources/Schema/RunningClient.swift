import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` with a pooled client whose background `run()` lives exactly as long as
    /// the body (PostgresClient does nothing until `run()` is going).
    @discardableResult
    public static func withRunning<Result: Sendable>(
        _ url: DatabaseURL, maximumConnections: Int = 20, logger: Logger,
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        // Fail within seconds, naming the cause, when PostgreSQL is down or refuses the login:
        // the pool alone would retry for about a minute and then report its internal type.
        try await DatabaseReachability(url: url).require(logger: logger)
        var configuration = try url.clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // The body starts once the child task is about to call run(): a lease before run()
            // has begun works, but makes PostgresNIO log a warning on the caller's terminal.
            await withCheckedContinuation { (started: CheckedContinuation<Void, Never>) in
                group.addTask {
                    started.resume()
                    await client.run()
                }
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
