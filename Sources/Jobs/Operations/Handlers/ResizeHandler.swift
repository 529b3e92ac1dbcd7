import CloudStack
import Devices
import Primitives
import Foundation
import PostgresNIO
import Schema
import Worker

extension OperationType {
    public static let resize: OperationType = "resize"
}

/// `resize`: grows a volume to `size` bytes (rounded up to whole GB, as `create` does) with
/// CloudStack's resizeVolume, for a volume attached to this appliance or detached. On the
/// appliance the by-id device is re-read and must show CloudStack's new size; the mapping's
/// and the volume's `size_bytes` change in the transaction that completes the operation, and
/// an NBD export of the volume serves the new size to its next client.
///
/// At most once, as attach and detach: the resizeVolume job id is checkpointed before waiting
/// (`AsyncJobRequest`); a resume waits on it, adopts the job an unanswered request started, or,
/// finding the volume already at the size, sends nothing. A smaller size is refused (volumed
/// never shrinks a volume: CloudStack's `shrinkok` is not sent).
///
/// The type as a whole, files touched: this file; its row in migrations/0007_operation_types.sql
/// and its line in `OperationRegistry.handlerTypes`; `CloudStackClient.resizeVolume`;
/// `CreateHandler.wholeGB` (shared rounding); the simulator (SimulatedCloud+ResizeVolume.swift,
/// and one line each in SimulatedCloud, SimulatedCloud+Jobs, SimulatedEntities, SimulatorState,
/// HotPlugEmulator); the route in HTTPAPI/Routes/VolumeWriteRoutes.swift; `--size` in
/// volumed/ClientCommands.swift; tests (JobsTests/HandlerResizeTests, CloudStackResizeVolumeTests,
/// HTTPAPITests/VolumeWriteRouteTests); README, docs/architecture.md, CHANGELOG.
public struct ResizeHandler: EnvironmentOperationHandler {
    static let type = OperationType.resize

    let environment: JobsEnvironment

    public init(environment: JobsEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        /// Bytes.
        var size: Int64
    }

    struct Response: Encodable {
        var sizeBytes: Int64
        /// The by-id path when the volume is attached to this appliance; null when detached.
        var devicePath: String?

        enum CodingKeys: String, CodingKey {
            case sizeBytes = "size_bytes"
            case devicePath = "device_path"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(sizeBytes, forKey: .sizeBytes)
            try container.encode(devicePath, forKey: .devicePath)
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let request = try RequestDecoding.decode(Request.self, from: operation)
        guard request.size > 0 else {
            throw QueueFailure.invalidRequest("field 'size' is the new size in bytes and must be positive; got \(request.size)")
        }
        let sizeGB = CreateHandler.wholeGB(request.size)
        let target = Int64(sizeGB) * CreateHandler.bytesPerGiB
        let save: @Sendable (JobProgress) async throws -> Void = { try await context.saveCheckpoint($0) }
        let resume = try context.checkpoint(as: JobProgress.self)

        let volume: CloudStackVolume
        if let jobId = resume?.jobId {
            volume = try await finish(volumeId: volumeId, target: target, jobId: jobId, save: save)
        } else {
            volume = try await resize(volumeId: volumeId, sizeGB: sizeGB, target: target, resume: resume, context: context, save: save)
        }
        let devicePath = try await deviceOnAppliance(volume, context: context)
        let size = volume.size
        return try .completed(Response(sizeBytes: size, devicePath: devicePath?.byIdPath)) { connection in
            try await connection.query(
                DeviceMappingsTable.resized(volumeId: volumeId, sizeBytes: size, devicePath: devicePath?.devicePath), logger: context.logger)
            try await connection.query(VolumesTable.resized(volumeId: volumeId, sizeBytes: size), logger: context.logger)
        }
    }

    /// Sends resizeVolume unless the volume already has the size (an earlier attempt's job
    /// did it) or an earlier attempt's unanswered request left a job running on it.
    private func resize(
        volumeId: String, sizeGB: Int, target: Int64, resume: JobProgress?, context: OperationContext,
        save: @escaping @Sendable (JobProgress) async throws -> Void
    ) async throws -> CloudStackVolume {
        guard let current = try await environment.cloudStack.volume(id: volumeId) else {
            throw VolumeOperationFailure.volumeNotFound(volumeId)
        }
        let request = AsyncJobRequest(environment: environment, command: "resizeVolume")
        if let adopted = try await request.adoptPendingJob(
            resume: resume, pendingJobId: current.pendingJobId, on: "volume \(volumeId)", context: context, save: save),
           let jobId = adopted.jobId
        {
            return try await finish(volumeId: volumeId, target: target, jobId: jobId, save: save)
        }
        if let vmId = current.virtualmachineid, !environment.isAppliance(vmId) {
            throw VolumeOperationFailure(
                code: "volume_attached_elsewhere",
                message: "volume \(volumeId) is attached to VM \(vmId) (\(current.vmname ?? "unnamed")); resize runs on a volume "
                    + "attached to this appliance (\(environment.applianceVMId ?? "none configured")) or detached: detach it first",
                isTransient: false)
        }
        if current.size == target {
            context.logger.info("volume already has the requested size", metadata: ["size_bytes": "\(target)"])
            return current
        }
        guard current.size < target else {
            throw QueueFailure.invalidRequest(
                "field 'size' asks for \(target) bytes (\(sizeGB) GB), less than volume \(volumeId)'s current \(current.size) bytes; "
                    + "volumed only grows volumes: pass a size of at least \(current.size)")
        }
        if TransitionalVolumeState.states.contains(current.state) {
            throw VolumeOperationFailure.volumeInTransition(current)
        }
        try context.checkCancellation()
        let jobId = try await request.send(JobProgress(), save: save) {
            try await environment.cloudStack.resizeVolume(id: volumeId, sizeGB: sizeGB)
        }
        return try await finish(volumeId: volumeId, target: target, jobId: jobId, save: save)
    }

    /// Waits on the resize job. A job that ended without success is judged by the volume: at
    /// the size after all is success; otherwise the job id is forgotten (or the outcome marked
    /// unknown) and the job's error stands.
    private func finish(
        volumeId: String, target: Int64, jobId: String, save: @Sendable (JobProgress) async throws -> Void
    ) async throws -> CloudStackVolume {
        switch try await environment.waitForJob(jobId) {
        case .succeeded(let result):
            if let volume = result.volume, volume.id.lowercased() == volumeId.lowercased() { return volume }
            guard let volume = try await environment.cloudStack.volume(id: volumeId) else {
                throw VolumeOperationFailure.volumeNotFound(volumeId)
            }
            return volume
        case .ended(let error):
            if let volume = try await environment.cloudStack.volume(id: volumeId), volume.size == target {
                return volume
            }
            try await save(error.leavesOutcomeUnknown ? JobProgress(requestUnanswered: true) : JobProgress())
            throw error
        }
    }

    /// The volume's device on this appliance, re-read until it shows CloudStack's size (the
    /// guest learns of a grown disk from a capacity-change event, not at once); nil when the
    /// volume is not attached here.
    private func deviceOnAppliance(_ volume: CloudStackVolume, context: OperationContext) async throws -> ResolvedDevice? {
        guard environment.isAppliance(volume.virtualmachineid) else { return nil }
        let deadline = ContinuousClock.now.advanced(by: environment.deviceWaitTimeout)
        while true {
            let device = try await environment.resolver.waitForDevice(volumeId: volume.id, timeout: environment.deviceWaitTimeout)
            if device.sizeBytes == UInt64(volume.size) { return device }
            guard ContinuousClock.now < deadline else {
                throw VolumeOperationFailure(
                    code: "device_size_stale",
                    message: "CloudStack resized volume \(volume.id) to \(volume.size) bytes, but \(device.byIdPath) → "
                        + "\(device.devicePath) still shows \(device.sizeBytes) bytes after "
                        + "\(secondsText(environment.deviceWaitTimeout)); the operation is retried (the resize is not sent again)",
                    isTransient: true)
            }
            context.logger.debug("device not yet at the new size", metadata: ["device_bytes": "\(device.sizeBytes)"])
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
