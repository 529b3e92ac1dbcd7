import CloudStack
import Schema
import PostgresNIO
import Worker

/// attachVolume as a `CloudStackStep`: the step `attach` runs on its own and `cleanup` runs
/// to hand a volume back to the appliance. Returns CloudStack's view of the attached volume.
struct AttachVolume: CloudStackAction {
    let environment: OperationEnvironment
    let context: OperationContext
    let volumeId: CloudStackID
    let vmId: CloudStackID
    /// CloudStack's device slot; nil lets CloudStack pick the next free one.
    var deviceId: Int? = nil

    var command: String { "attachVolume" }
    var object: String { "volume \(volumeId)" }

    func look(_ progress: StepProgress) async throws -> CloudStackVolume? {
        try await environment.cloudStack.volume(id: volumeId)
    }

    func decide(_ current: CloudStackVolume?, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
        guard let current else { throw VolumeOperationFailure.volumeNotFound(volumeId) }
        if let attachedTo = current.virtualmachineid {
            guard attachedTo == vmId else {
                throw VolumeOperationFailure.attachedElsewhere(volumeId: volumeId, attachedTo: attachedTo, requested: vmId)
            }
            context.logger.debug("volume already attached to the VM; verifying", metadata: ["vm_id": "\(vmId)"])
            return .done(current)
        }
        if TransitionalVolumeState.states.contains(current.state) {
            // CloudStack would refuse the attach (431); say why, and what fixes it.
            throw VolumeOperationFailure.volumeInTransition(current)
        }
        if deviceId == 0 {
            try await requireStoppedForRoot()
        }
        return .send(StepProgress()) {
            AcceptedRequest(jobId: try await environment.cloudStack.attachVolume(id: volumeId.value, virtualMachineId: vmId.value, deviceId: deviceId))
        }
    }

    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
        // What the operation waits for next, for whoever watches it (`OperationStep`).
        let awaitingLink = environment.isAppliance(vmId) ? StepProgress(jobId: progress.jobId, awaitingByIdLink: true) : nil
        switch ending {
        case .succeeded(let result):
            if let volume = result.volume, volume.id == volumeId { return .done(volume, saving: awaitingLink) }
            guard let volume = try await environment.cloudStack.volume(id: volumeId) else {
                throw VolumeOperationFailure.volumeNotFound(volumeId)
            }
            return .done(volume, saving: awaitingLink)
        case .failed(let error):
            if let volume = try await environment.cloudStack.volume(id: volumeId),
               volume.virtualmachineid == vmId
            {
                return .done(volume, saving: awaitingLink)
            }
            return .fail(error, saving: progress.forgettingJob(after: error))
        }
    }

    /// The volume listed a moment ago, so the id CloudStack does not know is the VM's.
    func refused(_ error: CloudStackError) -> any Error {
        guard error.kind == .notFound else { return error }
        return VolumeOperationFailure.vmNotFound(vmId, detail: error.errorText ?? error.message)
    }

    /// VolumeApiServiceImpl.checkDeviceId → validateRootVolumeDetachAttach: a root disk is
    /// attached only to a Stopped VM. Checked here so the refusal names the VM's state and
    /// the fix instead of CloudStack's detach-worded text.
    private func requireStoppedForRoot() async throws {
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
        var volumeId: CloudStackID
        var vmId: CloudStackID
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
                        volumeId: placement.volumeId.value, vmId: placement.vmId.value, mode: placement.mode,
                        cloudStackDeviceId: placement.cloudStackDeviceId, byIdPath: placement.byIdPath,
                        devicePath: placement.devicePath, sizeBytes: placement.sizeBytes, vmContextId: placement.vmContextId),
                    logger: logger)
            }
        }
    }

    /// On the appliance: waits for the by-id link and checks its size against CloudStack's;
    /// on any other VM: a remote placement without paths. The mapping is keyed by
    /// `volumeId` as the operation names it, which may differ in case from `volume.id`.
    func placement(of volume: CloudStackVolume) async throws -> Placement {
        guard environment.isAppliance(vmId) else {
            return Placement(volumeId: volumeId, vmId: vmId, mode: "remote", cloudStackDeviceId: volume.deviceid,
                             byIdPath: nil, devicePath: nil, sizeBytes: volume.size)
        }
        let device = try await environment.resolver.waitForDevice(volumeId: volume.id.value, timeout: environment.deviceWaitTimeout)
        guard device.sizeBytes == UInt64(volume.size) else {
            throw VolumeOperationFailure.sizeMismatch(volumeId: volume.id, device: device, cloudStackBytes: volume.size)
        }
        context.logger.info("volume visible on the appliance", metadata: ["by_id_path": "\(device.byIdPath)", "device": "\(device.devicePath)"])
        return Placement(volumeId: volumeId, vmId: vmId, mode: "appliance", cloudStackDeviceId: volume.deviceid,
                         byIdPath: device.byIdPath, devicePath: device.devicePath, sizeBytes: volume.size)
    }
}
