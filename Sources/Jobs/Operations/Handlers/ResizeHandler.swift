import Primitives
import Devices
import CloudStack
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
/// an NBD export of the volume serves the new size to its next client. A smaller size is
/// refused: volumed never shrinks a volume (CloudStack's `shrinkok` is not sent).
///
/// The type as a whole, files touched: this file; its row in migrations/0007_operation_types.sql;
/// its line in `OperationRegistry.handlerTypes` (Swift has no load-time registration);
/// `CloudStackClient.resizeVolume`; `DeviceMappingsTable.resized`, `VolumesTable.resized`; the
/// simulator (SimulatedCloud+ResizeVolume.swift and a line each in SimulatedCloud,
/// SimulatedCloud+Jobs, SimulatedEntities, SimulatorState, HotPlugEmulator); the route in
/// HTTPAPI/Routes/VolumeWriteRoutes.swift; `--size` in volumed/ClientCommands.swift; tests
/// (HandlerResizeTests, CloudStackResizeVolumeTests, VolumeWriteRouteTests, OperationStepTests);
/// README, docs/architecture.md, CHANGELOG.
public struct ResizeHandler: EnvironmentOperationHandler {
    static let type = OperationType.resize
    static let firstStep = "looking at the volume in CloudStack before resizing"
    static let checkpointedSteps: [(key: String?, command: String)] = [(nil, "resizeVolume")]

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
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
        let volume = try await ResizeVolume(environment: environment, context: context, volumeId: volumeId, sizeGB: sizeGB)
            .run(in: .checkpoint(of: context))
        let device = try await deviceOnAppliance(volume, context: context)
        let size = volume.size
        return try .completed(Response(sizeBytes: size, devicePath: device?.byIdPath)) { connection in
            try await connection.query(
                DeviceMappingsTable.resized(volumeId: volumeId.value, sizeBytes: size, devicePath: device?.devicePath), logger: context.logger)
            try await connection.query(VolumesTable.resized(volumeId: volumeId.value, sizeBytes: size), logger: context.logger)
        }
    }

    /// resizeVolume as a `CloudStackStep`: nothing is sent when the volume already has the size
    /// (an earlier attempt's job did it); a smaller size and a volume on another VM are refused
    /// before anything is sent; a job that ended without success counts when the volume has the
    /// size after all.
    struct ResizeVolume: CloudStackAction {
        let environment: OperationEnvironment
        let context: OperationContext
        let volumeId: CloudStackID
        let sizeGB: Int

        var command: String { "resizeVolume" }
        var object: String { "volume \(volumeId)" }
        private var target: Int64 { Int64(sizeGB) * CreateHandler.bytesPerGiB }

        func look(_ progress: StepProgress) async throws -> CloudStackVolume? {
            try await environment.cloudStack.volume(id: volumeId)
        }

        func decide(_ current: CloudStackVolume?, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
            guard let current else { throw VolumeOperationFailure.volumeNotFound(volumeId) }
            if let vmId = current.virtualmachineid, !environment.isAppliance(vmId) {
                throw VolumeOperationFailure(
                    code: "volume_attached_elsewhere",
                    message: "volume \(volumeId) is attached to VM \(vmId) (\(current.vmname ?? "unnamed")); resize runs on a volume "
                        + "attached to this appliance (\(environment.applianceVMId ?? "none configured")) or detached: detach it first")
            }
            if current.size == target {
                context.logger.info("volume already has the requested size", metadata: ["size_bytes": "\(target)"])
                return .done(current)
            }
            guard current.size < target else {
                throw QueueFailure.invalidRequest(
                    "field 'size' asks for \(target) bytes (\(sizeGB) GB), less than volume \(volumeId)'s current \(current.size) bytes; "
                        + "volumed only grows volumes: pass a size of at least \(current.size)")
            }
            if TransitionalVolumeState.states.contains(current.state) {
                throw VolumeOperationFailure.volumeInTransition(current)
            }
            return .send(StepProgress()) {
                AcceptedRequest(jobId: try await environment.cloudStack.resizeVolume(id: volumeId.value, sizeGB: sizeGB))
            }
        }

        func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
            if case .succeeded(let result) = ending, let volume = result.volume, volume.id == volumeId { return .done(volume) }
            let volume = try await environment.cloudStack.volume(id: volumeId)
            switch ending {
            case .succeeded:
                guard let volume else { throw VolumeOperationFailure.volumeNotFound(volumeId) }
                return .done(volume)
            case .failed(let error):
                if let volume, volume.size == target { return .done(volume) }
                return .fail(error, saving: progress.forgettingJob(after: error))
            }
        }
    }

    /// The volume's device on this appliance, re-read until it shows CloudStack's size (the
    /// guest learns of a grown disk from a capacity-change event, not at once); nil when the
    /// volume is not attached here.
    private func deviceOnAppliance(_ volume: CloudStackVolume, context: OperationContext) async throws -> ResolvedDevice? {
        guard environment.isAppliance(volume.virtualmachineid) else { return nil }
        let deadline = ContinuousClock.now.advanced(by: environment.deviceWaitTimeout)
        while true {
            let device = try await environment.resolver.waitForDevice(volumeId: volume.id.value, timeout: environment.deviceWaitTimeout)
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
