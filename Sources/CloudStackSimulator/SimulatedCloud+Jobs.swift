import Foundation

/// The asynchronous halves: a job stays `jobstatus 0` for `asyncDelay` (or its command's
/// `jobDurationsMs`), then runs the
/// checks VolumeApiServiceImpl performs inside the job and applies the effect, or fails
/// with `jobresultcode` = errorcode (ApiAsyncJobDispatcher).
extension SimulatedCloud {
    static let javaClasses = [
        "createVolume": "org.apache.cloudstack.api.command.user.volume.CreateVolumeCmd",
        "attachVolume": "org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd",
        "detachVolume": "org.apache.cloudstack.api.command.user.volume.DetachVolumeCmd",
        "resizeVolume": "org.apache.cloudstack.api.command.user.volume.ResizeVolumeCmd",
        "stopVirtualMachine": "org.apache.cloudstack.api.command.user.vm.StopVMCmd",
        "startVirtualMachine": "org.apache.cloudstack.api.command.user.vm.StartVMCmd",
        "destroyVirtualMachine": "org.apache.cloudstack.api.command.user.vm.DestroyVMCmd",
    ]

    func startJob(_ command: String, action: SimulatedJobAction) -> SimulatedJob {
        let stuck = faults.stuckRate > 0 && Double.random(in: 0..<1) < faults.stuckRate
        let delay = drawJobDuration(command)
        let job = SimulatedJob(
            id: UUID().uuidString.lowercased(), apiCommand: command, javaClass: javaClass(for: command),
            action: action, created: Date(), dueAt: ContinuousClock.now.advanced(by: delay), duration: delay, stuck: stuck,
            abandonment: stuck ? nil : drawAbandonment()
        )
        jobs.append(job)
        if !stuck {
            jobTimers[job.id] = Task { [weak self] in
                try? await Task.sleep(for: delay)
                guard !Task.isCancelled else { return }
                await self?.runJob(job.id)
            }
        } else if let release = faults.stuckDelayMs {
            releaseStuckJob(job.id, after: .milliseconds(release))
        }
        return job
    }

    /// Runs a due job once; later calls are no-ops. A job whose effect hangs (a VM stuck in
    /// `Stopping`) becomes stuck: it stays `jobstatus 0`.
    func runJob(_ jobID: String) {
        jobTimers[jobID] = nil
        guard let index = jobs.firstIndex(where: { $0.id == jobID }), jobs[index].status == 0, !jobs[index].stuck else { return }
        if let how = jobs[index].abandonment {
            abandon(jobAt: index, how)
            return
        }
        do {
            guard let (objectName, object) = try execute(jobs[index].action) else {
                jobs[index].stuck = true
                logger.debug("job hangs", metadata: ["job_id": "\(jobID)"])
                return
            }
            jobs[index].status = 1
            jobs[index].resultCode = 0
            jobs[index].result = .object([(objectName, object)])
        } catch let failure as JobFailure {
            jobs[index].status = 2
            jobs[index].resultCode = failure.errorCode
            jobs[index].result = ResponseRendering.jobFailure(failure)
        } catch {
            jobs[index].status = 2
            jobs[index].resultCode = APIErrorCode.internalError
            jobs[index].result = ResponseRendering.jobFailure(.internalError("\(error)"))
        }
        jobs[index].completed = Date()
        if let entity = jobs[index].action.volumeID ?? jobs[index].action.virtualMachineID {
            publishWebhookEvent(command: jobs[index].apiCommand, entityUUID: entity, succeeded: jobs[index].status == 1)
        }
        logger.debug("job finished", metadata: ["job_id": "\(jobID)", "status": "\(jobs[index].status)"])
    }

    /// The job's effect and its result object (`volume` or `virtualmachine`, each job's
    /// `getResultObjectName`); nil when the effect hangs.
    private func execute(_ action: SimulatedJobAction) throws -> (String, JSONValue)? {
        switch action {
        case .createVolume(let volumeID):
            guard let index = volumeIndex(volumeID), !volumes[index].removed else {
                throw JobFailure.internalError("Failed to create volume: the volume was removed before it was created")
            }
            // A data volume without a VM stays Allocated; storage is allocated on first attach.
            return ("volume", renderVolume(volumes[index]))
        case .attachVolume(let volumeID, let vmID, let deviceID):
            return ("volume", try attach(volumeID: volumeID, vmID: vmID, requestedDeviceID: deviceID))
        case .detachVolume(let volumeID):
            return ("volume", try detach(volumeID: volumeID))
        case .resizeVolume(let volumeID, let sizeGB, let shrinkOK):
            return ("volume", try resize(volumeID: volumeID, sizeGB: sizeGB, shrinkOK: shrinkOK))
        case .stopVirtualMachine(let vmID, let forced):
            return try runStop(vmID: vmID, forced: forced).map { ("virtualmachine", $0) }
        case .startVirtualMachine(let vmID):
            return ("virtualmachine", try runStart(vmID: vmID))
        case .destroyVirtualMachine(let vmID, let expunge):
            try checkExpungeAllowed(expunge)
            return try runDestroy(vmID: vmID, expunge: expunge).map { ("virtualmachine", $0) }
        }
    }

    /// VolumeApiServiceImpl.attachVolumeToVM (apache/cloudstack
    /// `server/src/main/java/com/cloud/storage/VolumeApiServiceImpl.java`), in its order:
    /// getAndCheckVolumeInfo, getAndCheckUserVmVO, checkDeviceId (device 0 = root:
    /// validateRootVolumeDetachAttach wants the VM Stopped, and the VM must have no device 0
    /// yet), checkNumberOfAttachedVolumes (not for device 0), then getDeviceId, whose
    /// RuntimeExceptions ("deviceId should be 0,1,2,4-N", 3 being the CD-ROM) surface as
    /// 530, and the hypervisor attach. VolumeDaoImpl.attachVolume makes a device-0 volume ROOT.
    private func attach(volumeID: String, vmID: String, requestedDeviceID: Int?) throws -> JSONValue {
        guard let volumeIndex = volumeIndex(volumeID) else {
            throw JobFailure.invalidParameter("Please specify a volume with the valid type: ROOT or DATADISK")
        }
        let volume = volumes[volumeIndex]
        if volume.virtualMachineID != nil {
            throw JobFailure.invalidParameter("Please specify a volume that is not attached to any VM.")
        }
        if volume.removed || !Self.attachableVolumeStates.contains(volume.state) {
            // VALID_ATTACH_STATES: a volume left Attaching/Detaching (SimulatedCloud+VolumeStates.swift).
            throw JobFailure.invalidParameter("Volume state must be in Allocated, Ready or in Uploaded state")
        }
        guard let vmIndex = vmIndex(vmID), !virtualMachines[vmIndex].removed else {
            throw JobFailure.invalidParameter("Please specify a valid User VM.")
        }
        let vm = virtualMachines[vmIndex]
        guard vm.state == "Running" || vm.state == "Stopped" else {
            throw JobFailure.invalidParameter("Please specify a VM that is either running or stopped.")
        }
        let attachedToVM = volumes.filter { !$0.removed && $0.virtualMachineID == vmID }
        if requestedDeviceID == 0 {
            if vm.state != "Stopped" {
                throw JobFailure.invalidParameter(Self.rootDetachAttachStateText)
            }
            if attachedToVM.contains(where: { $0.deviceID == 0 }) {
                throw JobFailure.invalidParameter("Vm already has root volume attached to it")
            }
        } else {
            let dataDisks = attachedToVM.filter { $0.type == "DATADISK" }.count
            if dataDisks >= configuration.maxDataVolumesPerVM {
                throw JobFailure.invalidParameter(
                    "The specified VM already has the maximum number of data disks (\(configuration.maxDataVolumesPerVM)) attached. Please specify another VM."
                )
            }
        }
        let deviceID = try allocateDeviceID(requested: requestedDeviceID, vm: vm, inUse: Set(attachedToVM.compactMap(\.deviceID)))

        if let hotPlug = hotPlug(forVM: vmID) {
            do {
                try plugDisk(hotPlug, volumeID: volume.id, sizeBytes: volume.sizeBytes)
            } catch {
                throw JobFailure.internalError("Failed to attach volume \(volume.name) to VM \(vm.name); \(error)")
            }
        }
        volumes[volumeIndex].virtualMachineID = vmID
        volumes[volumeIndex].deviceID = deviceID
        volumes[volumeIndex].attached = Date()
        if deviceID == 0 { volumes[volumeIndex].type = "ROOT" }
        if vm.state == "Running" { volumes[volumeIndex].state = "Ready" }
        return renderVolume(volumes[volumeIndex])
    }

    /// validateRootVolumeDetachAttach's refusal, for attach and detach alike.
    static let rootDetachAttachStateText = "Root volume detach can happen only when vm is in states: Stopped or Destroyed"

    /// VolumeApiServiceImpl.getDeviceId: devices 0…(max data disks + 1); 3 is the CD-ROM.
    /// Plain RuntimeExceptions, naming the VM by its internal id.
    private func allocateDeviceID(requested: Int?, vm: SimulatedVirtualMachine, inUse: Set<Int>) throws -> Int {
        let maxDeviceID = configuration.maxDataVolumesPerVM + 1
        if let requested {
            if requested < 0 || requested > maxDeviceID || requested == 3 {
                throw JobFailure.internalError("deviceId should be 0,1,2,4-\(maxDeviceID)")
            }
            if inUse.contains(requested) {
                throw JobFailure.internalError("deviceId \(requested) is used by vm \(vm.internalID)")
            }
            return requested
        }
        guard let free = (1...maxDeviceID).first(where: { $0 != 3 && !inUse.contains($0) }) else {
            throw JobFailure.internalError("All device Ids are used by vm \(vm.internalID)")
        }
        return free
    }

    /// VolumeApiServiceImpl.detachVolumeFromVM: the volume must be attached, the VM Running,
    /// Stopped or Destroyed, and a ROOT disk only comes off a Stopped VM:
    /// validateRootVolumeDetachAttach tests `!(state == Stopped) || (state == Destroyed)`, so a
    /// Destroyed VM is refused too, whatever its message says (recoverVirtualMachine first).
    /// VolumeDaoImpl.detachVolume turns a ROOT volume back into a DATADISK.
    private func detach(volumeID: String) throws -> JSONValue {
        guard let volumeIndex = volumeIndex(volumeID) else {
            throw JobFailure.invalidParameter("The specified volume is not attached to a VM.")
        }
        let volume = volumes[volumeIndex]
        guard let vmID = volume.virtualMachineID, let vmIndex = vmIndex(vmID) else {
            throw JobFailure.invalidParameter("The specified volume is not attached to a VM.")
        }
        let vm = virtualMachines[vmIndex]
        guard ["Running", "Stopped", "Destroyed"].contains(vm.state) else {
            throw JobFailure.invalidParameter("Please specify a VM that is either running or stopped.")
        }
        if volume.type == "ROOT" && vm.state != "Stopped" {
            throw JobFailure.invalidParameter(Self.rootDetachAttachStateText)
        }
        try failIfGuestHoldsDisk(volumeIndex)
        try unplugIfAppliance(volumeIndex)
        detachRecord(volumeIndex)
        return renderVolume(volumes[volumeIndex])
    }

    /// Hot-unplug from an appliance: its by-id link goes, as udev removes it.
    func unplugIfAppliance(_ volumeIndex: Int) throws {
        let volume = volumes[volumeIndex]
        guard let vmID = volume.virtualMachineID, let hotPlug = hotPlug(forVM: vmID) else { return }
        do {
            try unplugDisk(hotPlug, volumeID: volume.id)
        } catch {
            let vmName = virtualMachines.first { $0.id == volume.virtualMachineID }?.name ?? "the appliance"
            throw JobFailure.internalError("Failed to detach volume \(volume.name) from VM \(vmName); \(error)")
        }
    }

    /// VolumeDaoImpl.detachVolume.
    func detachRecord(_ volumeIndex: Int) {
        volumes[volumeIndex].virtualMachineID = nil
        volumes[volumeIndex].deviceID = nil
        volumes[volumeIndex].attached = nil
        if volumes[volumeIndex].type == "ROOT" { volumes[volumeIndex].type = "DATADISK" }
    }
}
