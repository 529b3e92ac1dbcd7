import Foundation

/// The simulator's records, shaped after the CloudStack DB rows they stand for.

struct SimulatedVolume: Sendable {
    var id: String
    /// CloudStack's internal long id, which some service-layer messages print.
    var internalID: Int
    var name: String
    /// `ROOT` or `DATADISK`.
    var type: String
    var sizeBytes: Int64
    /// `Allocated` until first attached to a running VM, then `Ready`; `Expunged` once deleted.
    var state: String
    var virtualMachineID: String?
    var deviceID: Int?
    var diskOfferingID: String?
    var created: Date
    var attached: Date?
    /// Deleted volumes stay resolvable by UUID (ParamProcessWorker looks ids up including
    /// removed rows) but no longer list.
    var removed: Bool = false
}

struct SimulatedVirtualMachine: Sendable {
    var id: String
    /// CloudStack's internal long id, which UserVmManagerImpl's messages print.
    var internalID: Int
    var name: String
    /// `VirtualMachine.State`: `Running`, `Stopping`, `Stopped`, `Starting`, `Destroyed`,
    /// `Expunging`.
    var state: String
    /// The hypervisor-side name, `i-<account>-<id>-VM`.
    var instanceName: String
    var created: Date
    /// Fault injection: a stop that is not forced leaves the VM `Stopping` and its job never
    /// finishes, like a guest that ignores the shutdown on a host whose agent hangs.
    var sticksInStopping: Bool = false
    /// Expunged VMs stay resolvable by UUID (ParamProcessWorker includes removed rows) but
    /// no longer list.
    var removed: Bool = false

    /// How VMInstanceVO.toString names the VM in CloudStack's messages.
    var logName: String { "VM[User|\(instanceName)]" }
}

/// What an async job does once its delay has passed.
enum SimulatedJobAction: Sendable {
    case createVolume(volumeID: String)
    case attachVolume(volumeID: String, virtualMachineID: String, deviceID: Int?)
    case detachVolume(volumeID: String)
    case resizeVolume(volumeID: String, sizeGB: Int64?, shrinkOK: Bool)
    case stopVirtualMachine(virtualMachineID: String, forced: Bool)
    case startVirtualMachine(virtualMachineID: String)
    case destroyVirtualMachine(virtualMachineID: String, expunge: Bool)

    /// What CloudStack reports as the job's `jobinstancetype` and `jobinstanceid`.
    var instance: (type: String, id: String) {
        switch self {
        case .createVolume(let id), .attachVolume(let id, _, _), .detachVolume(let id), .resizeVolume(let id, _, _):
            return ("Volume", id)
        case .stopVirtualMachine(let id, _), .startVirtualMachine(let id), .destroyVirtualMachine(let id, _):
            return ("VirtualMachine", id)
        }
    }

    var volumeID: String? { instance.type == "Volume" ? instance.id : nil }
    var virtualMachineID: String? { instance.type == "VirtualMachine" ? instance.id : nil }
}

struct SimulatedJob: Sendable {
    var id: String
    /// The API command that started the job, e.g. `attachVolume`.
    var apiCommand: String
    /// The command class CloudStack reports in `cmd`.
    var javaClass: String
    var action: SimulatedJobAction
    /// 0 pending, 1 succeeded, 2 failed (AsyncJob.Status ordinal).
    var status: Int = 0
    var resultCode: Int = 0
    var result: JSONValue?
    var created: Date
    var completed: Date?
    var dueAt: ContinuousClock.Instant
    /// How long it stays pending (`dueAt` − its start).
    var duration: Duration
    /// How many queryAsyncJobResult calls asked for it: what a poll schedule costs.
    var queries = 0
    /// Fault injection: the job stays at status 0 (forever, or until `stuckDelayMs`).
    var stuck: Bool
    /// Fault injection: at its due time CloudStack fails the job itself (job GC, restart).
    var abandonment: JobAbandonment?
    /// Deleted by the job GC after `jobExpireSeconds`: queryAsyncJobResult no longer finds it.
    var purged = false
}

/// Why a job failed, reported in `jobresult` with `jobresultcode` = `errorCode`
/// (ApiAsyncJobDispatcher: InvalidParameterValueException → 431, other exceptions → 530).
struct JobFailure: Error {
    var errorCode: Int
    var errorText: String

    static func invalidParameter(_ text: String) -> JobFailure { JobFailure(errorCode: APIErrorCode.paramError, errorText: text) }
    static func internalError(_ text: String) -> JobFailure { JobFailure(errorCode: APIErrorCode.internalError, errorText: text) }
}
