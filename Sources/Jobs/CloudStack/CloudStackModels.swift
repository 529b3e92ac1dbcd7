/// Typed views of CloudStack's response objects, decoded from the real JSON field names
/// (apache/cloudstack `VolumeResponse`, `UserVmResponse`, `ZoneResponse`,
/// `DiskOfferingResponse`; compare libcloud's `listVolumes_rootdisksize.json` fixture).
/// Fields CloudStack omits when empty are optional.

/// A volume as `listVolumes` and the volume jobs return it. `deviceid` and the VM fields
/// are absent while the volume is detached.
public struct CloudStackVolume: Codable, Sendable, Equatable, ListedWithPendingJob {
    public var id: CloudStackID
    public var name: String
    public var zoneid: CloudStackID
    public var zonename: String?
    /// `ROOT` or `DATADISK`.
    public var type: String
    public var deviceid: Int?
    public var virtualmachineid: CloudStackID?
    public var vmname: String?
    public var vmstate: String?
    /// Bytes.
    public var size: Int64
    /// `Allocated`, `Ready`, `Destroy`, `Expunging`, `Expunged`, …
    public var state: String
    public var diskofferingid: CloudStackID?
    public var created: String?
    /// When it was last attached (absent while detached).
    public var attached: String?
    public var hypervisor: String?
    /// The async job acting on the volume right now, and its status (always 0, pending):
    /// CloudStack lists them only while such a job runs. `volume_view` left-joins
    /// `async_job ON instance_id = volumes.id AND instance_type = 'Volume' AND job_status = 0`
    /// (apache/cloudstack `engine/schema/src/main/resources/META-INF/db/views/cloud.volume_view.sql`)
    /// and `VolumeJoinDaoImpl.newVolumeResponse` sets both when the row has a job
    /// (`server/src/main/java/com/cloud/api/query/dao/VolumeJoinDaoImpl.java`). Attach, detach
    /// and create jobs have the volume as their instance: `getApiResourceType()` is
    /// `ApiCommandResourceType.Volume` in AttachVolumeCmd, DetachVolumeCmd and CreateVolumeCmd
    /// (`api/src/main/java/org/apache/cloudstack/api/command/user/volume/`), and
    /// `server/src/main/java/com/cloud/api/ApiServer.java` builds the AsyncJobVO with
    /// `getApiResourceType().toString()` as `instance_type` and the volume (`getApiResourceId()`,
    /// or for a create the entity `create()` made) as `instance_id`.
    public var jobid: String?
    public var jobstatus: Int?

    public init(
        id: CloudStackID, name: String, zoneid: CloudStackID, zonename: String? = nil, type: String, deviceid: Int? = nil,
        virtualmachineid: CloudStackID? = nil, vmname: String? = nil, vmstate: String? = nil, size: Int64, state: String,
        diskofferingid: CloudStackID? = nil, created: String? = nil, attached: String? = nil, hypervisor: String? = nil,
        jobid: String? = nil, jobstatus: Int? = nil
    ) {
        self.id = id
        self.name = name
        self.zoneid = zoneid
        self.zonename = zonename
        self.type = type
        self.deviceid = deviceid
        self.virtualmachineid = virtualmachineid
        self.vmname = vmname
        self.vmstate = vmstate
        self.size = size
        self.state = state
        self.diskofferingid = diskofferingid
        self.created = created
        self.attached = attached
        self.hypervisor = hypervisor
        self.jobid = jobid
        self.jobstatus = jobstatus
    }

    /// Whether CloudStack reports the volume as attached to a VM.
    public var isAttached: Bool { virtualmachineid != nil }
}

public struct CloudStackVirtualMachine: Codable, Sendable, Equatable, ListedWithPendingJob {
    public var id: CloudStackID
    public var name: String
    public var displayname: String?
    /// `VirtualMachine.State`: `Running`, `Stopping`, `Stopped`, `Starting`, `Destroyed`,
    /// `Expunging`, `Migrating`, `Error`, …
    public var state: String
    public var zoneid: CloudStackID?
    public var zonename: String?
    public var hypervisor: String?
    public var instancename: String?
    public var created: String?
    /// As `CloudStackVolume.jobid`, from `cloud.user_vm_view.sql` and
    /// `UserVmJoinDaoImpl.newUserVmResponse`: StopVMCmd and DestroyVMCmd have the VM as their
    /// instance (`ApiCommandResourceType.VirtualMachine`).
    public var jobid: String?
    public var jobstatus: Int?
}

/// An object CloudStack's list commands show with the async job acting on it (BaseResponse's
/// `jobid` and `jobstatus`, set only while that job is pending).
public protocol ListedWithPendingJob {
    var jobid: String? { get }
    var jobstatus: Int? { get }
}

extension ListedWithPendingJob {
    /// The job CloudStack runs on the object now, if any.
    public var pendingJobId: String? { jobstatus == AsyncJobResult.Status.pending.rawValue ? jobid : nil }
}

public struct CloudStackZone: Codable, Sendable, Equatable {
    public var id: CloudStackID
    public var name: String
    public var allocationstate: String?
    public var networktype: String?
    public var localstorageenabled: Bool?
}

public struct CloudStackDiskOffering: Codable, Sendable, Equatable {
    public var id: CloudStackID
    public var name: String
    public var displaytext: String?
    /// GB; 0 for custom-size offerings.
    public var disksize: Int64?
    /// True when the size is chosen at createVolume time.
    public var iscustomized: Bool?
    public var storagetype: String?
    public var created: String?
}

/// One `queryAsyncJobResult` answer (apache/cloudstack `AsyncJobResponse`).
public struct AsyncJobResult: Sendable, Equatable {
    public enum Status: Int, Sendable, Equatable {
        case pending = 0
        case succeeded = 1
        case failed = 2
        case cancelled = 3
    }

    public var jobId: String
    public var status: Status
    /// 0 on success, the errorcode on failure (ApiAsyncJobDispatcher).
    public var resultCode: Int
    public var resultType: String?
    /// The volume in `jobresult.volume`, for volume jobs that succeeded.
    public var volume: CloudStackVolume?
    /// The VM in `jobresult.virtualmachine`, for VM jobs (stop, start, destroy) that succeeded.
    public var virtualMachine: CloudStackVirtualMachine?
    /// `jobresult.success`, for jobs that answer with a success flag only.
    public var success: Bool?
    public var errorCode: Int?
    public var errorText: String?
    /// The Java command class CloudStack reports in `cmd`.
    public var command: String?
    /// `jobinstanceid`: the volume or VM the job works on (what a webhook delivery names).
    public var instanceId: String?

    public init(
        jobId: String, status: Status, resultCode: Int, resultType: String? = nil, volume: CloudStackVolume? = nil,
        virtualMachine: CloudStackVirtualMachine? = nil, success: Bool? = nil, errorCode: Int? = nil, errorText: String? = nil,
        command: String? = nil, instanceId: String? = nil
    ) {
        self.instanceId = instanceId
        self.jobId = jobId
        self.status = status
        self.resultCode = resultCode
        self.resultType = resultType
        self.volume = volume
        self.virtualMachine = virtualMachine
        self.success = success
        self.errorCode = errorCode
        self.errorText = errorText
        self.command = command
    }
}
