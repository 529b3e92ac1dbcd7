import Foundation

/// JSON for the objects the simulator returns, with the field names and order of
/// apache/cloudstack's response classes (VolumeResponse, UserVmResponse, ZoneResponse,
/// DiskOfferingResponse, AsyncJobResponse) as seen in libcloud's recorded fixtures
/// (`libcloud/test/compute/fixtures/cloudstack/listVolumes_rootdisksize.json`,
/// `queryAsyncJobResult_*.json`). Absent values are omitted, as Gson does.
enum ResponseRendering {
    static let account = "admin"
    static let accountID = "5f0a1c2e-8a4b-11ee-b9d1-0242ac120002"
    static let userID = "5f0a2e7c-8a4b-11ee-b9d1-0242ac120002"
    static let domain = "ROOT"
    static let domainID = "4a9e7b52-8a4b-11ee-b9d1-0242ac120002"

    static func timestamp(_ date: Date) -> JSONValue { .string(SignatureVerifier.formatTZDate(date)) }

    /// `pendingJob`: the job acting on the volume, rendered as `jobid` and `jobstatus` 0 the
    /// way list commands show it (VolumeJoinDaoImpl.newVolumeResponse sets both only when
    /// `volume_view` joined a job with `job_status = 0`). They come last: they are
    /// BaseResponse's fields, and Gson writes a class's own fields before its superclass's.
    static func volume(_ volume: SimulatedVolume, vm: SimulatedVirtualMachine?, offeringName: String?, pendingJob: SimulatedJob? = nil) -> JSONValue {
        .object([
            ("id", .string(volume.id)),
            ("name", .string(volume.name)),
            ("zoneid", .string(SimulatorConfiguration.zoneID)),
            ("zonename", .string(SimulatorConfiguration.zoneName)),
            ("type", .string(volume.type)),
            ("deviceid", volume.deviceID.map { .int($0) }),
            ("virtualmachineid", vm.map { .string($0.id) }),
            ("vmname", vm.map { .string($0.name) }),
            ("vmdisplayname", vm.map { .string($0.name) }),
            ("vmstate", vm.map { .string($0.state) }),
            ("provisioningtype", .string("thin")),
            ("size", .int(volume.sizeBytes)),
            ("created", timestamp(volume.created)),
            ("attached", volume.attached.map(timestamp)),
            ("state", .string(volume.state)),
            ("account", .string(account)),
            ("domainid", .string(domainID)),
            ("domain", .string(domain)),
            ("storagetype", .string("shared")),
            ("hypervisor", .string(volume.state == "Allocated" ? "None" : "KVM")),
            ("diskofferingid", volume.diskOfferingID.map { .string($0) }),
            ("diskofferingname", offeringName.map { .string($0) }),
            ("destroyed", .bool(false)),
            ("isextractable", .bool(true)),
            ("displayvolume", .bool(true)),
            ("jobid", pendingJob.map { .string($0.id) }),
            ("jobstatus", pendingJob.map { .int($0.status) }),
        ])
    }

    /// `pendingJob`: as for `volume`, the job acting on the VM in list replies
    /// (UserVmJoinDaoImpl.newUserVmResponse, `user_vm_view`).
    static func virtualMachine(_ vm: SimulatedVirtualMachine, pendingJob: SimulatedJob? = nil) -> JSONValue {
        .object([
            ("id", .string(vm.id)),
            ("name", .string(vm.name)),
            ("displayname", .string(vm.name)),
            ("account", .string(account)),
            ("domainid", .string(domainID)),
            ("domain", .string(domain)),
            ("created", timestamp(vm.created)),
            ("state", .string(vm.state)),
            ("haenable", .bool(false)),
            ("zoneid", .string(SimulatorConfiguration.zoneID)),
            ("zonename", .string(SimulatorConfiguration.zoneName)),
            ("hypervisor", .string("KVM")),
            ("instancename", .string(vm.instanceName)),
            ("cpunumber", .int(2)),
            ("memory", .int(4096)),
            ("jobid", pendingJob.map { .string($0.id) }),
            ("jobstatus", pendingJob.map { .int($0.status) }),
        ])
    }

    static func zone() -> JSONValue {
        .object([
            ("id", .string(SimulatorConfiguration.zoneID)),
            ("name", .string(SimulatorConfiguration.zoneName)),
            ("networktype", .string("Advanced")),
            ("securitygroupsenabled", .bool(false)),
            ("allocationstate", .string("Enabled")),
            ("dhcpprovider", .string("VirtualRouter")),
            ("localstorageenabled", .bool(false)),
        ])
    }

    static let customOfferingName = "Custom"

    /// DiskOfferingResponse: `disksize` in GB (0 for a customized offering) and `iscustomized`.
    static func diskOffering(_ offering: SimulatedCloud.DiskOffering, created: Date) -> JSONValue {
        .object([
            ("id", .string(offering.id)),
            ("name", .string(offering.name)),
            ("displaytext", .string(offering.displayText)),
            ("disksize", .int(offering.diskSizeGB)),
            ("created", timestamp(created)),
            ("iscustomized", .bool(offering.isCustomized)),
            ("storagetype", .string("shared")),
            ("provisioningtype", .string("thin")),
            ("encrypt", .bool(false)),
        ])
    }

    /// `{"count":N,"<item>":[…]}`, or `{}` when empty: ListResponse leaves both out.
    static func list(itemName: String, _ items: [JSONValue]) -> JSONValue {
        list(itemName: itemName, items, count: items.count)
    }

    /// One page of a list whose filtered rows number `count`. ApiResponseSerializer writes
    /// `count` only when it is not 0 and the list only when the page has rows: a page past
    /// the end is `{"count":N}`.
    static func list(itemName: String, _ items: [JSONValue], count: Int) -> JSONValue {
        .object([("count", count == 0 ? nil : .int(count)), (itemName, items.isEmpty ? nil : .array(items))])
    }

    static func asyncJob(_ job: SimulatedJob) -> JSONValue {
        let finished = job.status != 0
        return .object([
            ("accountid", .string(accountID)),
            ("userid", .string(userID)),
            ("cmd", .string(job.javaClass)),
            ("jobstatus", .int(job.status)),
            ("jobprocstatus", .int(0)),
            ("jobresultcode", .int(job.resultCode)),
            // AsyncJobJoinDaoImpl sets the type only when the result could be read back.
            ("jobresulttype", finished && job.result != nil ? .string("object") : nil),
            ("jobresult", finished ? job.result : nil),
            ("jobinstancetype", .string(job.action.instance.type)),
            ("jobinstanceid", .string(job.action.instance.id)),
            ("created", timestamp(job.created)),
            ("completed", job.completed.map(timestamp)),
            ("jobid", .string(job.id)),
        ])
    }

    /// The failed job's `jobresult`: ExceptionResponse as ApiAsyncJobDispatcher builds it.
    static func jobFailure(_ failure: JobFailure) -> JSONValue {
        .object([("uuidList", .array([])), ("errorcode", .int(failure.errorCode)), ("errortext", .string(failure.errorText))])
    }
}
