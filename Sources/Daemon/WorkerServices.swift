import Operations
import Logging
import PostgresNIO
import Schema
import ServiceLifecycle
import Worker

/// The long-running parts of a worker process, composed once from the operator's settings:
/// the database pool, the handlers (CloudStack client, by-id resolver, NBD backend), the
/// queue worker and the start-up checks. `volumed worker` runs exactly these;
/// `volumed serve` runs these and the HTTP API.
public struct WorkerServices: Sendable {
    public let database: DatabaseURL
    public let client: PostgresClient
    public let runtime: WorkerHandlers
    public let worker: QueueWorker
    /// Brings the NBD exports in line with the mappings before the first claim.
    public let exportReconciler: ExportReconciler
    /// The full reconcile (tables vs CloudStack, by-id links, exports): periodic, and
    /// `POST /admin/force-sync`.
    public let reconciler: Reconciler
    /// Between periodic reconcile passes; nil: none.
    public let reconcileInterval: Duration?
    let logger: Logger

    public static func make(
        database: DatabaseURL, configuration: WorkerConfiguration, handlers settings: WorkerHandlers.Settings,
        reconcileInterval: Duration?, logger: Logger
    ) async throws -> WorkerServices {
        var clientConfiguration = try database.clientConfiguration()
        // Handlers, heartbeat, completions, rescuer, listener, plus room for API reads.
        clientConfiguration.options.maximumConnections = configuration.concurrency + 8
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let runtime = try await WorkerHandlers.make(settings, logger: logger)
        let worker = QueueWorker(client: client, database: database, handlers: runtime.handlers,
                                 configuration: configuration, logger: logger)
        let exportReconciler = ExportReconciler(backend: runtime.backend, resolver: runtime.resolver,
                                                applianceVMId: configuration.applianceVMId, database: client, logger: logger)
        return WorkerServices(database: database, client: client, runtime: runtime, worker: worker,
                              exportReconciler: exportReconciler,
                              reconciler: runtime.reconciler(database: client, logger: logger),
                              reconcileInterval: reconcileInterval, logger: logger)
    }

    /// For a ServiceGroup, in start order: the pool (everything else queries through it),
    /// then the start-up checks followed by the claim loop, the relay of other processes'
    /// CloudStack webhook deliveries, and the periodic reconcile.
    public var services: [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: client),
            .init(service: StartupThenWork(database: database, client: client, worker: worker, reconciler: exportReconciler,
                                           logger: logger)),
        ]
        services.append(.init(service: CloudStackEventRelay(database: database, wakeups: runtime.cloudStack.wakeups, logger: logger)))
        if let reconcileInterval {
            services.append(.init(service: PeriodicReconciler(reconciler: reconciler, interval: reconcileInterval, logger: logger)))
        }
        return services
    }

    /// Releases what outlives the group (the CloudStack HTTP client).
    public func shutdown() async {
        await runtime.shutdown()
    }

    /// Runs `group` and releases the runtime afterwards, also when the group fails.
    public func run(_ group: ServiceGroup) async throws {
        do {
            try await group.run()
        } catch {
            await shutdown()
            throw error
        }
        await shutdown()
    }
}

/// Before claiming anything: refuse a schema this binary does not match (pending or changed
/// migrations), then bring the NBD exports in line with the active mappings (entries without
/// a mapping removed, missing ones recreated, old /dev/vdX rows rewritten to by-id), so an
/// appliance reboot or a crash between an export and its row never leaves drift behind.
struct StartupThenWork: Service {
    let database: DatabaseURL
    let client: PostgresClient
    let worker: QueueWorker
    let reconciler: ExportReconciler
    let logger: Logger

    func run() async throws {
        // A database that is down or refuses the login fails the start at once, in words,
        // rather than after the pool's minute of retries with its internal error type.
        try await DatabaseReachability(url: database).require(logger: logger)
        try await Migrator(logger: logger).checkUpToDate(client)
        let report = try await reconciler.reconcile()
        logger.info("export reconciliation", metadata: ["summary": "\(report)"])
        for line in report.lines { logger.notice("\(line)") }
        try await worker.run()
    }
}
