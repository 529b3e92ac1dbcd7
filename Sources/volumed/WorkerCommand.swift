import ArgumentParser
import Daemon
import Logging
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and run operations until SIGTERM/SIGINT (then finish or release in-flight work).",
        discussion: "Records no metrics (nothing to scrape them from); `volumed serve` runs the same worker with the HTTP API and /metrics.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var options: WorkerOptions
    @OptionGroup var periodicReconcile: PeriodicReconcileOptions

    func run() async throws {
        Volumed.bootstrapLogging()
        let logger = Logger(label: "volumed")
        let services = try await options.workerServices(database: database, periodicReconcile: periodicReconcile, logger: logger)
        try await services.run(ServiceGroup(configuration: .init(
            services: services.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)))
    }
}

extension WorkerOptions {
    /// The worker's services from flags and environment: what `worker` and `serve` share.
    func workerServices(database: DatabaseOptions, periodicReconcile: PeriodicReconcileOptions,
                        logger: Logger) async throws -> WorkerServices {
        let configuration = try workerConfiguration()
        return try await WorkerServices.make(
            database: try database.url(), configuration: configuration,
            handlers: try HandlerFactory.settings(options: self, configuration: configuration),
            reconcileInterval: try periodicReconcile.interval(), logger: logger)
    }
}
