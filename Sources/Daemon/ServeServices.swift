import HTTPAPI
import Hummingbird
import Logging
import Prometheus
import Schema
import ServiceLifecycle
import UnixSignals
import VolumeClient

/// `volumed serve`: the worker's services and the HTTP API in one ServiceGroup, which owns
/// SIGTERM/SIGINT: the API stops accepting, the worker finishes or releases its operations.
public struct ServeServices: Sendable {
    public let worker: WorkerServices
    public let api: Application<RouterResponder<BasicRequestContext>>
    public let volumes: VolumeClient

    public static func make(
        worker: WorkerServices, http: HTTPSettings, registry: PrometheusCollectorRegistry, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> ServeServices {
        let volumes = VolumeClient(client: worker.client, database: worker.database, logger: logger)
        let reconciler = worker.reconciler
        var dependencies = APIDependencies(
            database: worker.client, volumes: volumes, cloudStack: worker.runtime.cloudStack, resolver: worker.runtime.resolver,
            nbdPort: worker.runtime.backend.port, worker: worker.worker,
            forceSync: { try await reconciler.reconcile(dryRun: false) },
            registry: registry, logger: logger,
            databaseReachability: DatabaseReachability(url: worker.database, timeout: .seconds(2)))
        dependencies.listenDatabase = worker.database
        let api = VolumedAPI.application(dependencies, settings: http, onListening: onListening)
        return ServeServices(worker: worker, api: api, volumes: volumes)
    }

    /// The one group: pool, start-up checks and worker, HTTP server.
    public func serviceGroup(signals: [UnixSignal] = [.sigterm, .sigint], logger: Logger) -> ServiceGroup {
        ServiceGroup(configuration: .init(
            services: worker.services + [.init(service: api)],
            gracefulShutdownSignals: signals, logger: logger))
    }

    public func run(signals: [UnixSignal] = [.sigterm, .sigint], logger: Logger) async throws {
        defer { volumes.close() }
        try await worker.run(serviceGroup(signals: signals, logger: logger))
    }
}
