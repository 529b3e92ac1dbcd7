import ArgumentParser
import Foundation
import Jobs
import Logging
import PostgresNIO
import Schema
import ServiceLifecycle
import Worker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and run operations until SIGTERM/SIGINT (then finish or release in-flight work).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var options: WorkerOptions
    @OptionGroup var periodicReconcile: PeriodicReconcileOptions

    func run() async throws {
        Volumed.bootstrapLogging()
        let logger = Logger(label: "volumed")
        let url = try database.url()
        let configuration = try options.workerConfiguration()
        var clientConfiguration = try url.clientConfiguration()
        clientConfiguration.options.maximumConnections = configuration.concurrency + 8
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let runtime = try await HandlerFactory.make(options: options, configuration: configuration, logger: logger)

        let worker = QueueWorker(client: client, database: url, handlers: runtime.handlers,
                                 configuration: configuration, logger: logger)
        let reconciler = ExportReconciler(backend: runtime.backend, resolver: runtime.resolver,
                                          applianceVMId: configuration.applianceVMId, database: client, logger: logger)
        let startup = StartupThenWork(client: client, worker: worker, reconciler: reconciler, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: client), .init(service: startup)]
                + periodicReconcile.services(runtime: runtime, database: client, logger: logger),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
    }
}

/// Before claiming anything: refuse a schema this binary does not match (pending or changed
/// migrations), then bring the NBD exports in line with the active mappings (entries without
/// a mapping removed, missing ones recreated, old /dev/vdX rows rewritten to by-id), so an
/// appliance reboot or a crash between an export and its row never leaves drift behind.
struct StartupThenWork: Service {
    let client: PostgresClient
    let worker: QueueWorker
    let reconciler: ExportReconciler
    let logger: Logger

    func run() async throws {
        try await Migrator(logger: logger).checkUpToDate(client)
        let report = try await reconciler.reconcile()
        logger.info("export reconciliation", metadata: ["summary": "\(report)"])
        for line in report.lines { logger.notice("\(line)") }
        try await worker.run()
    }
}
