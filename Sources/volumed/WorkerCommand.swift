import ArgumentParser
import Foundation
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

    func run() async throws {
        Volumed.bootstrapLogging()
        let logger = Logger(label: "volumed")
        let url = try DatabaseURL(try database.url().text)
        let configuration = try options.workerConfiguration()
        var clientConfiguration = try url.clientConfiguration()
        clientConfiguration.options.maximumConnections = configuration.concurrency + 8
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let runtime = try await HandlerFactory.make(options: options, configuration: configuration, logger: logger)

        let worker = QueueWorker(client: client, database: url, handlers: runtime.handlers,
                                 configuration: configuration, logger: logger)
        let checkSchema = SchemaCheck(client: client, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: client), .init(service: checkSchema, successTerminationBehavior: .ignore),
                       .init(service: worker)],
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

/// Refuses to run on a schema this binary does not match (pending or changed migrations).
/// It is a service so it runs once the pool is up; a failure stops the whole group.
struct SchemaCheck: Service {
    let client: PostgresClient
    let logger: Logger

    func run() async throws {
        try await Migrator(logger: logger).checkUpToDate(client)
    }
}
