import Foundation
import Schema
import Worker

/// `attach`: a volume attached to a VM, with its `device_mappings` row.
///
/// - Already attached to that VM: verified, not repeated (for the appliance the by-id link
///   is resolved again, so a link re-pointed after a reboot refreshes `device_path`).
/// - Attached elsewhere: a permanent error naming the VM.
/// - Else attachVolume; its job id is checkpointed before waiting, and a retry or rescue
///   waits on that job instead of attaching twice.
/// - On the appliance: waits for the by-id link, checks its size against CloudStack's,
///   records an `appliance` mapping; on any other VM a `remote` mapping without paths.
public struct AttachHandler: OperationHandler {
    let environment: JobsEnvironment

    public init(environment: JobsEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        /// CloudStack's device slot; nil lets CloudStack pick the next free one.
        var deviceId: Int?
        /// `"root"`: attach as the root disk (device 0), the original daemon's attach-root.
        var attachAs: String?

        enum CodingKeys: String, CodingKey {
            case deviceId = "device_id"
            case attachAs = "attach_as"
        }
    }

    struct Checkpoint: Codable {
        var jobId: String?

        enum CodingKeys: String, CodingKey {
            case jobId = "job_id"
        }
    }

    struct Response: Encodable {
        /// The stable by-id path on the appliance; null on a remote VM.
        var devicePath: String?
        /// What the by-id link resolves to now; null on a remote VM.
        var realDevice: String?
        var cloudStackDeviceId: Int?
        var operationMode: String

        enum CodingKeys: String, CodingKey {
            case devicePath = "device_path"
            case realDevice = "real_device"
            case cloudStackDeviceId = "cloudstack_device_id"
            case operationMode = "operation_mode"
        }

        /// Nulls are written out: callers of the original API read `device_path: null`.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(devicePath, forKey: .devicePath)
            try container.encode(realDevice, forKey: .realDevice)
            try container.encode(cloudStackDeviceId, forKey: .cloudStackDeviceId)
            try container.encode(operationMode, forKey: .operationMode)
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let vmId = try RequestDecoding.vmId(of: operation)
        let deviceId = try Self.requestedDeviceId(operation)

        let volume: CloudStackVolume
        if let jobId = try context.checkpoint(as: Checkpoint.self)?.jobId {
            volume = try await finishAttach(volumeId: volumeId, vmId: vmId, jobId: jobId, context: context)
        } else {
            volume = try await attachIfNeeded(volumeId: volumeId, vmId: vmId, deviceId: deviceId, context: context)
        }
        try context.checkCancellation()
        return try await mapped(volume, vmId: vmId, context: context)
    }

    /// Looks first: verifies an existing attachment, refuses one to another VM, else starts
    /// the attach and checkpoints its job before waiting.
    private func attachIfNeeded(volumeId: String, vmId: String, deviceId: Int?, context: OperationContext) async throws -> CloudStackVolume {
        guard let current = try await environment.cloudStack.volume(id: volumeId) else {
            throw VolumeOperationFailure.volumeNotFound(volumeId)
        }
        if let attachedTo = current.virtualmachineid {
            guard attachedTo.lowercased() == vmId.lowercased() else {
                throw VolumeOperationFailure.attachedElsewhere(volumeId: volumeId, attachedTo: attachedTo, requested: vmId)
            }
            context.logger.debug("volume already attached to the VM; verifying", metadata: ["vm_id": "\(vmId)"])
            return current
        }
        try context.checkCancellation()
        let jobId: String
        do {
            jobId = try await environment.cloudStack.attachVolume(id: volumeId, virtualMachineId: vmId, deviceId: deviceId)
        } catch let error as CloudStackError where error.code == "cloudstack_not_found" {
            // The volume listed a moment ago, so the id CloudStack does not know is the VM's.
            throw VolumeOperationFailure.vmNotFound(vmId, detail: error.errorText ?? error.message)
        }
        try await context.saveCheckpoint(Checkpoint(jobId: jobId))
        return try await finishAttach(volumeId: volumeId, vmId: vmId, jobId: jobId, context: context)
    }

    /// Waits on the attach job. When it ended without success, the volume decides: attached
    /// to the VM after all is success; otherwise the job id is forgotten (the retry may
    /// attach anew, the job being over) and the job's error stands.
    private func finishAttach(volumeId: String, vmId: String, jobId: String, context: OperationContext) async throws -> CloudStackVolume {
        switch try await environment.waitForJob(jobId) {
        case .succeeded(let result):
            if let volume = result.volume, volume.id == volumeId { return volume }
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
            try await context.saveCheckpoint(Checkpoint())
            throw error
        }
    }

    /// The mapping for an attached volume, committed with the operation.
    private func mapped(_ volume: CloudStackVolume, vmId: String, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = volume.id
        let deviceId = volume.deviceid.map(Int32.init)
        guard environment.isAppliance(vmId) else {
            let response = Response(devicePath: nil, realDevice: nil, cloudStackDeviceId: volume.deviceid, operationMode: "remote")
            return try .completed(response) { connection in
                try await connection.query(
                    MappingSQL.upsertMapping(
                        volumeId: volumeId, vmId: vmId, mode: "remote", cloudStackDeviceId: deviceId,
                        byIdPath: nil, devicePath: nil, sizeBytes: volume.size),
                    logger: context.logger)
            }
        }

        let device = try await environment.resolver.waitForDevice(volumeId: volumeId, timeout: environment.deviceWaitTimeout)
        guard device.sizeBytes == UInt64(volume.size) else {
            throw VolumeOperationFailure.sizeMismatch(volumeId: volumeId, device: device, cloudStackBytes: volume.size)
        }
        context.logger.info("volume visible on the appliance", metadata: ["by_id_path": "\(device.byIdPath)", "device": "\(device.devicePath)"])
        let response = Response(
            devicePath: device.byIdPath, realDevice: device.devicePath, cloudStackDeviceId: volume.deviceid, operationMode: "appliance")
        return try .completed(response) { connection in
            try await connection.query(
                MappingSQL.upsertMapping(
                    volumeId: volumeId, vmId: vmId, mode: "appliance", cloudStackDeviceId: deviceId,
                    byIdPath: device.byIdPath, devicePath: device.devicePath, sizeBytes: volume.size),
                logger: context.logger)
        }
    }

    /// `device_id` (≥ 0) or `attach_as: "root"` (device 0); both together must agree.
    static func requestedDeviceId(_ operation: ClaimedOperation) throws -> Int? {
        let request = try RequestDecoding.decode(Request.self, from: operation)
        if let deviceId = request.deviceId, deviceId < 0 {
            throw QueueFailure.invalidRequest("field 'device_id' must be 0 (root) or a positive CloudStack device slot, got \(deviceId)")
        }
        guard let attachAs = request.attachAs else { return request.deviceId }
        guard attachAs == "root" else {
            throw QueueFailure.invalidRequest("field 'attach_as' may only be \"root\" (attach as device 0), got \(quotedForMessage(attachAs))")
        }
        if let deviceId = request.deviceId, deviceId != 0 {
            throw QueueFailure.invalidRequest("attach_as \"root\" means device 0, but field 'device_id' is \(deviceId); drop one of them")
        }
        return 0
    }
}
