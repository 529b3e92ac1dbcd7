import CloudStack
import PostgresNIO
import Worker
import Schema

/// Attaching a volume to a VM and finding where it landed: the step `attach` runs on its own
/// and `cleanup` runs to hand a volume back to the appliance. Its progress is a value the
/// caller stores in its own checkpoint (as `VolumeDetacher`'s), so both handlers resume it
/// the same way.
struct VolumeAttacher: Sendable {
    let environment: JobsEnvironment

    /// The attachVolume job, checkpointed before waiting on it.
    typealias Progress = JobProgress

    /// Attaches `volumeId` to `vmId` (as device `deviceId`, or CloudStack's next free slot)
    /// and returns CloudStack's view of the attached volume.
    ///
    /// - Already attached to that VM: verified, not repeated.
    /// - Attached elsewhere: a permanent error naming the VM.
    /// - `Attaching`/`Detaching` (see `TransitionalVolumeState`): nothing is sent; permanent
    ///   `volume_stuck_in_transition` when no job runs on it, else transient.
    /// - Else attachVolume, sent through `AsyncJobRequest`: its job id goes to `save` before
    ///   waiting, and a resume with that progress waits on the same job instead of attaching
    ///   twice; a resume after an unanswered attachVolume adopts the job CloudStack lists on
    ///   the volume, or (none pending, volume still detached) attaches anew.
    /// - Device 0 (the root disk): CloudStack takes it only while the VM is Stopped, so a VM
    ///   in any other state is refused before anything is sent.
    func attach(
        volumeId: String, vmId: String, deviceId: Int?, resume: Progress?, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void
    ) async throws -> CloudStackVolume {
        if let jobId = resume?.jobId {
            return try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, save: save)
        }
        guard let current = try await environment.cloudStack.volume(id: volumeId) else {
            throw VolumeOperationFailure.volumeNotFound(volumeId)
        }
        let request = AsyncJobRequest(environment: environment, command: "attachVolume")
        if let adopted = try await request.adoptPendingJob(
            resume: resume, pendingJobId: current.pendingJobId, on: "volume \(volumeId)", context: context, save: save),
           let jobId = adopted.jobId
        {
            return try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, save: save)
        }
        if let attachedTo = current.virtualmachineid {
            guard attachedTo.lowercased() == vmId.lowercased() else {
                throw VolumeOperationFailure.attachedElsewhere(volumeId: volumeId, attachedTo: attachedTo, requested: vmId)
            }
            context.logger.debug("volume already attached to the VM; verifying", metadata: ["vm_id": "\(vmId)"])
            return current
        }
        if TransitionalVolumeState.states.contains(current.state) {
            // CloudStack would refuse the attach (431); say why, and what fixes it.
            throw VolumeOperationFailure.volumeInTransition(current)
        }
        if deviceId == 0 {
            try await requireStoppedForRoot(volumeId: volumeId, vmId: vmId)
        }
        try context.checkCancellation()
        let jobId: String
        do {
            jobId = try await request.send(Progress(), save: save) {
                try await environment.cloudStack.attachVolume(id: volumeId, virtualMachineId: vmId, deviceId: deviceId)
            }
        } catch let error as CloudStackError where error.code == "cloudstack_not_found" {
            // The volume listed a moment ago, so the id CloudStack does not know is the VM's.
            throw VolumeOperationFailure.vmNotFound(vmId, detail: error.errorText ?? error.message)
        }
        return try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, save: save)
    }

    /// Waits on the attach job. When it ended without success, the volume decides: attached
    /// to the VM after all is success; otherwise the job id is forgotten (the retry may
    /// attach anew, the job being over) and the job's error stands. A job whose outcome is
    /// unknown (failed by CloudStack without a result, or purged) leaves the unanswered mark
    /// instead, so the retry looks at the volume, and at any job pending on it, first.
    private func finish(
        volumeId: String, vmId: String, jobId: String, save: @Sendable (Progress) async throws -> Void
    ) async throws -> CloudStackVolume {
        let volume = try await waitOnJob(volumeId: volumeId, vmId: vmId, jobId: jobId, save: save)
        if environment.isAppliance(vmId) {
            // What the operation waits for next, for whoever watches it (`OperationStep`).
            try await save(Progress(jobId: jobId, awaitingByIdLink: true))
        }
        return volume
    }

    private func waitOnJob(
        volumeId: String, vmId: String, jobId: String, save: @Sendable (Progress) async throws -> Void
    ) async throws -> CloudStackVolume {
        switch try await environment.waitForJob(jobId) {
        case .succeeded(let result):
            if let volume = result.volume, volume.id.lowercased() == volumeId.lowercased() { return volume }
            guard let volume = try await environment.cloudStack.volume(id: volumeId) else {
                throw VolumeOperationFailure.volumeNotFound(volumeId)
            }
            return volume
        case .ended(let error):
            if let volume = try await environment.cloudStack.volume(id: volumeId),
               volume.virtualmachineid?.lowercased() == vmId.lowercased()
            {
                return volume
            }
            try await save(error.leavesOutcomeUnknown ? Progress(requestUnanswered: true) : Progress())
            throw error
        }
    }

    /// VolumeApiServiceImpl.checkDeviceId → validateRootVolumeDetachAttach: a root disk is
    /// attached only to a Stopped VM. Checked here so the refusal names the VM's state and
    /// the fix instead of CloudStack's detach-worded text.
    private func requireStoppedForRoot(volumeId: String, vmId: String) async throws {
        guard let vm = try await environment.cloudStack.virtualMachine(id: vmId) else {
            throw VolumeOperationFailure.vmNotFound(vmId, detail: "listVirtualMachines returned nothing")
        }
        guard vm.state == "Stopped" else {
            throw VolumeOperationFailure.vmNotStoppedForRoot(volumeId: volumeId, vmId: vmId, state: vm.state)
        }
    }

    /// Where an attached volume is: what its `device_mappings` row and the operation's
    /// response say.
    struct Placement: Sendable {
        var volumeId: String
        var vmId: String
        /// `appliance`: a local block device reached through its by-id link; `remote`: on another VM.
        var mode: String
        var cloudStackDeviceId: Int?
        /// The stable by-id path on the appliance; nil on a remote VM.
        var byIdPath: String?
        /// What the by-id link resolves to now; nil on a remote VM.
        var devicePath: String?
        var sizeBytes: Int64
        /// The replication engine's VM context for snapshot tracking, when the attach named one;
        /// nil keeps what the row already has.
        var vmContextId: String? = nil

        /// The mapping row, for the transaction that completes the operation. Every volume
        /// has its own row, so a remote VM holds any number of volumes without paths.
        func upsertMapping(context: OperationContext) -> @Sendable (PostgresConnection) async throws -> Void {
            let placement = self
            let logger = context.logger
            return { connection in
                try await connection.query(
                    DeviceMappingsTable.upsert(
                        volumeId: placement.volumeId, vmId: placement.vmId, mode: placement.mode,
                        cloudStackDeviceId: placement.cloudStackDeviceId, byIdPath: placement.byIdPath,
                        devicePath: placement.devicePath, sizeBytes: placement.sizeBytes, vmContextId: placement.vmContextId),
                    logger: logger)
            }
        }
    }

    /// On the appliance: waits for the by-id link and checks its size against CloudStack's;
    /// on any other VM: a remote placement without paths. The mapping is keyed by
    /// `volumeId` as the operation names it, which may differ in case from `volume.id`.
    func placement(of volume: CloudStackVolume, as volumeId: String, on vmId: String, context: OperationContext) async throws -> Placement {
        guard environment.isAppliance(vmId) else {
            return Placement(volumeId: volumeId, vmId: vmId, mode: "remote", cloudStackDeviceId: volume.deviceid,
                             byIdPath: nil, devicePath: nil, sizeBytes: volume.size)
        }
        let device = try await environment.resolver.waitForDevice(volumeId: volume.id, timeout: environment.deviceWaitTimeout)
        guard device.sizeBytes == UInt64(volume.size) else {
            throw VolumeOperationFailure.sizeMismatch(volumeId: volume.id, device: device, cloudStackBytes: volume.size)
        }
        context.logger.info("volume visible on the appliance", metadata: ["by_id_path": "\(device.byIdPath)", "device": "\(device.devicePath)"])
        return Placement(volumeId: volumeId, vmId: vmId, mode: "appliance", cloudStackDeviceId: volume.deviceid,
                         byIdPath: device.byIdPath, devicePath: device.devicePath, sizeBytes: volume.size)
    }
}
