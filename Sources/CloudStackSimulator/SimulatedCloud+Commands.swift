import Foundation

/// The synchronous halves of the commands: what CloudStack checks and answers before any
/// async job exists (ParamProcessWorker, the Cmd's `create()` for BaseAsyncCreateCmd, the
/// sync DeleteVolumeCmd), and the list commands.
extension SimulatedCloud {
    func listZones() -> JSONValue {
        ResponseRendering.list(itemName: "zone", [ResponseRendering.zone()])
    }

    /// Each VM with its `state` (and the stop, start or destroy job pending on it, if any);
    /// an expunged VM's id resolves but lists nothing.
    func listVirtualMachines(_ parameters: RequestParameters) throws -> JSONValue {
        var selected = virtualMachines.filter { !$0.removed }
        if let id = parameters["id"], !id.isEmpty {
            let index = try resolveVM("listVirtualMachines", parameter: "id", id)
            selected = selected.filter { $0.id == virtualMachines[index].id }
        }
        return ResponseRendering.list(
            itemName: "virtualmachine",
            selected.map { ResponseRendering.virtualMachine($0, pendingJob: pendingJob(instanceType: "VirtualMachine", id: $0.id)) })
    }

    /// Filters `id`, `virtualmachineid` and `type`; a deleted volume's id resolves but
    /// lists nothing, giving `{"listvolumesresponse":{}}`. A volume with a pending job
    /// (attach, detach, create; stuck ones too) carries its `jobid` and `jobstatus` 0.
    /// Paged as every list command is (`ListPaging`), newest first: QueryManagerImpl
    /// `searchForVolumeIdsAndCount` sorts by `created` descending, a MySQL DATETIME (whole
    /// seconds); MySQL may order rows created in the same second differently from one page
    /// to the next (`SimulatorFaults.shuffleSameSecondVolumes`), the simulator otherwise by
    /// its internal id, newest first.
    func listVolumes(_ parameters: RequestParameters) throws -> JSONValue {
        let paging = try ListPaging(parameters, command: "listVolumes", defaultPageSize: configuration.defaultPageSize)
        var selected = volumes.filter { !$0.removed }
        if let id = parameters["id"], !id.isEmpty {
            let resolved = volumes[try resolveVolume("listVolumes", parameter: "id", id)].id
            selected = selected.filter { $0.id == resolved }
        }
        if let vmID = parameters["virtualmachineid"], !vmID.isEmpty {
            _ = try resolveVM("listVolumes", parameter: "virtualmachineid", vmID)
            selected = selected.filter { $0.virtualMachineID == vmID }
        }
        if let type = parameters["type"], !type.isEmpty {
            selected = selected.filter { $0.type.caseInsensitiveCompare(type) == .orderedSame }
        }
        let tieBreak = Dictionary(uniqueKeysWithValues: selected.map {
            ($0.internalID, faults.shuffleSameSecondVolumes ? Int.random(in: 0..<Int.max) : $0.internalID)
        })
        selected.sort { left, right in
            let (leftSecond, rightSecond) = (left.created.timeIntervalSince1970.rounded(.down), right.created.timeIntervalSince1970.rounded(.down))
            return leftSecond != rightSecond ? leftSecond > rightSecond : tieBreak[left.internalID, default: 0] > tieBreak[right.internalID, default: 0]
        }
        let pendingJobs = pendingJobs(instanceType: "Volume")
        return ResponseRendering.list(
            itemName: "volume", paging.slice(selected).map { renderVolume($0, listed: true, pendingJobs: pendingJobs) },
            count: selected.count)
    }

    /// CreateVolumeCmd is a BaseAsyncCreateCmd: `create()` allocates the volume row
    /// (state `Allocated`) synchronously — so it lists at once — and the job that follows
    /// completes it. The offering and size checks are VolumeApiServiceImpl.allocVolume's
    /// (SimulatedCloud+DiskOfferings.swift).
    func createVolume(_ parameters: RequestParameters) throws -> JSONValue {
        let command = "createVolume"
        let zoneID = parameters["zoneid"] ?? ""
        guard zoneID == SimulatorConfiguration.zoneID else {
            throw APIFailure.unknownEntity(command: command, parameter: "zoneid", value: zoneID)
        }
        guard let offeringID = parameters["diskofferingid"], !offeringID.isEmpty else {
            throw APIFailure.invalidParameter("At least one of disk Offering ID or snapshot ID must be passed whilst creating volume")
        }
        guard let offering = Self.diskOffering(offeringID) else {
            throw APIFailure.unknownEntity(command: command, parameter: "diskofferingid", value: offeringID)
        }
        let sizeBytes = try allocatedSizeBytes(offering: offering, sizeText: parameters["size"])

        let internalID = nextInternalID
        nextInternalID += 1
        // Java's UUID.toString() is lower case; an admin's `updateVolume customid=` may be any case.
        let uuid = UUID().uuidString
        let volume = SimulatedVolume(
            id: faults.upperCaseVolumeIDs ? uuid.uppercased() : uuid.lowercased(), internalID: internalID,
            name: (parameters["name"].flatMap { $0.isEmpty ? nil : $0 }) ?? "volume-\(internalID)",
            type: "DATADISK", sizeBytes: sizeBytes, state: "Allocated",
            virtualMachineID: nil, deviceID: nil, diskOfferingID: offering.id, created: Date(), attached: nil
        )
        volumes.append(volume)
        recordSideEffect(volume.id) { $0.createVolume += 1 }
        let job = startJob(command, action: .createVolume(volumeID: volume.id))
        return .object([("id", .string(volume.id)), ("jobid", .string(job.id))])
    }

    /// AttachVolumeCmd: only the UUIDs are checked now; every other check runs inside the
    /// job (VolumeApiServiceImpl.attachVolumeToVM), so those failures are async.
    func attachVolume(_ parameters: RequestParameters) throws -> JSONValue {
        let command = "attachVolume"
        let volumeIndex = try resolveVolume(command, parameter: "id", parameters["id"] ?? "")
        let vmIndex = try resolveVM(command, parameter: "virtualmachineid", parameters["virtualmachineid"] ?? "")
        var deviceID: Int?
        if let text = parameters["deviceid"], !text.isEmpty {
            guard let value = Int(text) else {
                throw APIFailure(
                    errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                    errorText: "Unable to execute API command attachvolume due to invalid value \(text) for parameter deviceid"
                )
            }
            deviceID = value
        }
        let volumeID = volumes[volumeIndex].id
        recordSideEffect(volumeID) { $0.attachVolume += 1 }
        let job = startJob(
            command,
            action: .attachVolume(volumeID: volumeID, virtualMachineID: virtualMachines[vmIndex].id, deviceID: deviceID)
        )
        return .object([("jobid", .string(job.id))])
    }

    /// DetachVolumeCmd takes `id`, or `virtualmachineid` + `deviceid`.
    func detachVolume(_ parameters: RequestParameters) throws -> JSONValue {
        let command = "detachVolume"
        let volumeID: String
        if let id = parameters["id"], !id.isEmpty {
            volumeID = volumes[try resolveVolume(command, parameter: "id", id)].id
        } else if let vmText = parameters["virtualmachineid"], let deviceText = parameters["deviceid"], !vmText.isEmpty {
            let vmID = virtualMachines[try resolveVM(command, parameter: "virtualmachineid", vmText)].id
            // The simulator's own wording: CloudStack words this case differently across versions.
            guard let match = volumes.first(where: { !$0.removed && $0.virtualMachineID == vmID && $0.deviceID == Int(deviceText) }) else {
                throw APIFailure.invalidParameter("Unable to find volume with device id \(deviceText) attached to VM \(vmID)")
            }
            volumeID = match.id
        } else {
            throw APIFailure.invalidParameter("Please provide either a volume id, or a tuple(device id, instance id)")
        }
        recordSideEffect(volumeID) { $0.detachVolume += 1 }
        let job = startJob(command, action: .detachVolume(volumeID: volumeID))
        return .object([("jobid", .string(job.id))])
    }

    /// DeleteVolumeCmd is synchronous (VolumeApiServiceImpl.deleteVolume →
    /// retrieveAndValidateVolume): an attached volume is refused with
    /// InvalidParameterValueException (431 / cserrorcode 4350); a removed one is "not found"
    /// by its internal id. The volume and its backing data are gone afterwards.
    func deleteVolume(_ parameters: RequestParameters) throws -> JSONValue {
        let index = try resolveVolume("deleteVolume", parameter: "id", parameters["id"] ?? "")
        let volume = volumes[index]
        if volume.removed {
            throw APIFailure.invalidParameter("Unable to find volume with ID: \(volume.internalID)")
        }
        if volume.virtualMachineID != nil {
            throw APIFailure.invalidParameter("Please specify a volume that is not attached to any VM.")
        }
        for hotPlug in allHotPlugs {
            try? hotPlug.destroyBackingFile(volumeID: volume.id)
        }
        volumes[index].removed = true
        volumes[index].state = "Expunged"
        recordSideEffect(volume.id) { $0.deleteVolume += 1 }
        publishWebhookEvent(command: "deleteVolume", entityUUID: volume.id, succeeded: true)
        return .object([("success", .bool(true))])
    }

    func queryAsyncJobResult(_ parameters: RequestParameters) throws -> JSONValue {
        let jobID = parameters["jobid"] ?? ""
        guard let index = jobs.firstIndex(where: { $0.id == jobID && !$0.purged }) else {
            throw APIFailure.unknownEntity(command: "queryAsyncJobResult", parameter: "jobid", value: jobID)
        }
        jobs[index].queries += 1
        // The timer normally has run the job already; run it here if it is due, so a poll
        // never sees a job pending past its delay.
        if jobs[index].status == 0, !jobs[index].stuck, ContinuousClock.now >= jobs[index].dueAt {
            runJob(jobID)
        }
        return ResponseRendering.asyncJob(jobs[index])
    }
}
