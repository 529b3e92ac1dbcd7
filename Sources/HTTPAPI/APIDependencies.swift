import Devices
import CloudStack
import Foundation
import Operations
import Logging
import PostgresNIO
import Prometheus
import Schema
import VolumeClient
import Worker

/// What the API reads and writes through, composed at start-up (`volumed serve`, or a test).
/// Writes go only through `volumes.enqueue` (`volume_operation_enqueue`): the API never
/// calls CloudStack to change anything.
public struct APIDependencies: Sendable {
    public var database: PostgresClient
    public var volumes: VolumeClient
    /// Read-only uses: `GET /volumes/{id}` (listVolumes) and health (listZones).
    public var cloudStack: CloudStackClient?
    /// The by-id directory this appliance's disks appear in, for device state and health.
    public var resolver: ByIdResolver?
    /// Where this appliance's NBD server listens, for health (a real handshake).
    public var nbdPort: Int?
    /// The worker of this process, for health; nil when the API runs without one.
    public var worker: QueueWorker?
    /// `POST /admin/force-sync`: reconciliation, returning a report encoded as the answer.
    public var forceSync: ForceSync?
    /// Prometheus text for `GET /metrics`.
    public var registry: PrometheusCollectorRegistry
    public var logger: Logger
    /// A direct connection check, so a request waiting on a database that is down is
    /// answered 503 within seconds; nil: requests wait for the pool.
    public var databaseReachability: DatabaseReachability?
    /// Where the web console LISTENs for changes (a session connection of its own); nil: the
    /// console's live updates rely on its 1 s poll alone.
    public var listenDatabase: DatabaseURL?

    public typealias ForceSync = @Sendable () async throws -> any Encodable & Sendable

    public init(
        database: PostgresClient, volumes: VolumeClient, cloudStack: CloudStackClient?, resolver: ByIdResolver?,
        nbdPort: Int?, worker: QueueWorker?, forceSync: ForceSync?, registry: PrometheusCollectorRegistry, logger: Logger,
        databaseReachability: DatabaseReachability? = nil
    ) {
        self.databaseReachability = databaseReachability
        self.database = database
        self.volumes = volumes
        self.cloudStack = cloudStack
        self.resolver = resolver
        self.nbdPort = nbdPort
        self.worker = worker
        self.forceSync = forceSync
        self.registry = registry
        self.logger = logger
    }
}
