import CloudStack
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Schema

/// The HTTP API of `volumed serve`: the original Volume Daemon's routes under `/api/v1`
/// (CONTRACT §8), Prometheus text at `/metrics`, liveness at `/health`, the web console at `/`.
public enum VolumedAPI {
    /// Every route, behind the error shape, the body limit and (when a token is set) auth.
    public static func router(_ dependencies: APIDependencies, settings: HTTPSettings) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AccessLogMiddleware(logger: dependencies.logger))
        router.add(middleware: ErrorMiddleware(logger: dependencies.logger, bodyLimit: settings.bodyLimit))
        if let token = settings.token {
            router.add(middleware: BearerAuthMiddleware(token: token))
        }
        router.add(middleware: BodyLimitMiddleware(limit: settings.bodyLimit))
        router.add(middleware: NULByteMiddleware())
        if let reachability = dependencies.databaseReachability {
            router.add(middleware: DatabaseAvailabilityMiddleware(reachability: reachability))
        }

        let api = router.group("api/v1")
        let reads = ReadSQL(client: dependencies.database, logger: dependencies.logger)
        let enqueuer = OperationEnqueuer(volumes: dependencies.volumes)
        VolumeWriteRoutes(enqueuer: enqueuer, bodyLimit: settings.bodyLimit).add(to: api)
        VolumeReadRoutes(reads: reads, cloudStack: dependencies.cloudStack, resolver: dependencies.resolver,
                         logger: dependencies.logger).add(to: api)
        DeviceRoutes(reads: reads, resolver: dependencies.resolver).add(to: api)
        OperationRoutes(volumes: dependencies.volumes).add(to: api)
        ExportRoutes(completion: ExportCompletion(enqueuer: enqueuer, wait: settings.exportWait), reads: reads,
                     bodyLimit: settings.bodyLimit).add(to: api)
        CleanupRoutes(enqueuer: enqueuer, bodyLimit: settings.bodyLimit, applianceVMId: dependencies.worker?.applianceVMId)
            .add(to: api)
        SnapshotRoutes(database: dependencies.database, logger: dependencies.logger, bodyLimit: settings.bodyLimit).add(to: api)
        AdminRoutes(forceSync: dependencies.forceSync).add(to: api)
        HealthRoutes(probe: HealthProbe(dependencies: dependencies)).add(to: api, root: router)
        MetricsRoutes(reads: reads, registry: dependencies.registry, startedAt: Date(), logger: dependencies.logger)
            .add(to: api, root: router)
        ConsoleRoutes(dependencies).add(to: router)
        WebhookRoutes(secret: settings.webhookSecret, wakeups: dependencies.cloudStack?.wakeups, bodyLimit: settings.bodyLimit,
                      database: dependencies.database, logger: dependencies.logger)
            .add(to: router)
        return router
    }

    /// A server of `POST /cloudstack/webhook` alone, waking `wakeups` (`volumed-bench clock
    /// --webhooks` measures the wake-up with the route `volumed serve` runs).
    package static func webhookReceiver(
        secret: String, wakeups: JobWakeups, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void
    ) -> Application<RouterResponder<BasicRequestContext>> {
        let router = Router()
        router.add(middleware: ErrorMiddleware(logger: logger, bodyLimit: 64 * 1024))
        WebhookRoutes(secret: secret, wakeups: wakeups, bodyLimit: 64 * 1024, logger: logger).add(to: router)
        return Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { await onListening($0.localAddress?.port ?? 0) }, logger: logger)
    }

    /// The server, a `Service` for a ServiceGroup. `onListening` gets the bound port once the
    /// socket is listening (the real one when `settings.port` is 0).
    public static func application(
        _ dependencies: APIDependencies, settings: HTTPSettings,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<BasicRequestContext>> {
        var httpLogger = dependencies.logger
        httpLogger[metadataKey: "component"] = "http"
        let logger = httpLogger
        let headerReadTimeout = TimeAmount(settings.headerReadTimeout)
        // A fresh handler per connection: the closure runs once for each accepted channel.
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [HeaderReadTimeoutHandler(timeout: headerReadTimeout)],
            idleTimeout: TimeAmount(settings.idleTimeout))
        return Application(
            router: router(dependencies, settings: settings),
            server: .http1(configuration: http1),
            configuration: ApplicationConfiguration(address: .hostname(settings.host, port: settings.port), serverName: "volumed"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                logger.info("HTTP API listening", metadata: [
                    "address": "\(settings.host):\(port)", "auth": "\(settings.token == nil ? "none" : "bearer token")",
                ])
                await onListening(port)
            },
            logger: logger)
    }
}
