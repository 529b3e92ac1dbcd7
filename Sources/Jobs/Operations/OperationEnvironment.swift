import NBD
import Devices
import CloudStack
import Logging
import Schema
import Worker

/// Everything the operation handlers need, composed once at start-up and shared by value.
///
/// `OperationRegistry` builds the handlers from it.
public struct OperationEnvironment: Sendable {
    public var cloudStack: CloudStackClient
    public var resolver: ByIdResolver
    /// The appliance VM this worker runs on (`VOLUMED_APPLIANCE_VM_ID`). Attaches to it wait
    /// for the by-id link and record an `appliance` mapping; nil: a worker without local disks.
    public var applianceVMId: String?
    /// How long an attach waits for the by-id link to appear, and a detach for it to go.
    public var deviceWaitTimeout: Duration
    /// How long a handler waits on one CloudStack async job before the (transient) timeout;
    /// the retry resumes waiting on the same job.
    public var jobTimeout: Duration
    /// How long a cleanup waits for the test-failover VM to reach Stopped before failing
    /// with `test_vm_stop_timeout` (the volume stays where it was).
    public var vmStopTimeout: Duration
    /// Takes a volume's NBD exports down before a forced detach; nil: forced detaches of
    /// exported volumes fail with a clear error.
    public var exportRemover: (any ExportRemover)?
    /// Publishes the NBD export an appliance attach asks for (`"export": true`, which the
    /// original daemon's HTTP attach implies); nil: such an attach completes with `export_error`.
    public var exporter: ExportPublisher?
    public var logger: Logger

    public init(
        cloudStack: CloudStackClient,
        resolver: ByIdResolver,
        applianceVMId: String?,
        deviceWaitTimeout: Duration = .seconds(60),
        jobTimeout: Duration = .seconds(600),
        vmStopTimeout: Duration = .seconds(300),
        exportRemover: (any ExportRemover)? = nil,
        exporter: ExportPublisher? = nil,
        logger: Logger
    ) {
        self.cloudStack = cloudStack
        self.resolver = resolver
        self.applianceVMId = applianceVMId
        self.deviceWaitTimeout = deviceWaitTimeout
        self.jobTimeout = jobTimeout
        self.vmStopTimeout = vmStopTimeout
        self.exportRemover = exportRemover
        self.exporter = exporter
        self.logger = logger
    }

    /// The handlers of the CloudStack volume operations, for `QueueWorker(handlers:)` (see
    /// `OperationRegistry`).
    public func handlers(exportBackend: (any NBDExportBackend)? = nil) -> [OperationType: any OperationHandler] {
        OperationRegistry.handlers(environment: self, exportBackend: exportBackend)
    }

    /// Whether `vmId` is the VM this worker's disks appear in.
    func isAppliance(_ vmId: CloudStackID?) -> Bool {
        guard let vmId, let applianceVMId else { return false }
        return vmId == CloudStackID(applianceVMId)
    }

    /// The same, for an id read from volumed's tables.
    func isAppliance(_ vmId: String?) -> Bool {
        isAppliance(vmId.map { CloudStackID($0) })
    }
}
