import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Schema
import ServiceLifecycle
import Worker

/// `volumed-bench worker`: a real queue worker process with synthetic handlers, used by the
/// drain benchmark and by the multi-process tests (kill -9, exactly-once).
struct SyntheticWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run a worker with synthetic handlers.")

    @Option(help: "PostgreSQL URL.") var databaseURL: String
    @Option(help: "noop | record | checkpoint-sleep") var handler: String = "noop"
    @Option(help: "Operations run at once.") var concurrency: Int = 16
    @Option(help: "Rows claimed per statement.") var batch: Int = 16
    @Option(help: "Lease in milliseconds.") var leaseMs: Int = 30_000
    @Option(help: "Heartbeat in milliseconds.") var heartbeatMs: Int = 10_000
    @Option(help: "Rescuer interval in milliseconds.") var rescueMs: Int = 5_000
    @Option(help: "Fallback poll in milliseconds.") var pollMs: Int = 1_000
    @Option(help: "Worker name (default: host-pid-random).") var name: String?

    func run() async throws {
        guard let synthetic = SyntheticHandler(rawValue: handler) else {
            throw ValidationError("--handler must be one of \(SyntheticHandler.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let logger = benchLogger()
        let url = try DatabaseURL(databaseURL)
        var clientConfiguration = try url.clientConfiguration()
        clientConfiguration.options.maximumConnections = max(4, concurrency + 4)
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let configuration = WorkerConfiguration(
            workerName: name ?? WorkerConfiguration.defaultWorkerName(),
            concurrency: concurrency, claimBatchSize: batch,
            leaseDuration: .milliseconds(leaseMs), heartbeatInterval: .milliseconds(heartbeatMs),
            pollInterval: .milliseconds(pollMs), rescueInterval: .milliseconds(rescueMs))
        let worker = QueueWorker(client: client, database: url, handlers: synthetic.handlers(),
                                 configuration: configuration, logger: logger)
        // Tells a parent process that the worker is about to claim.
        FileHandle.standardOutput.write(Data("worker \(configuration.workerName) ready\n".utf8))
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: client), .init(service: worker)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
