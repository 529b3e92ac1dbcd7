import CloudStack
import Schema
import Worker

extension OperationType {
    public static let delete: OperationType = "delete"
}

/// `delete`: the volume is deleted in CloudStack, marked `Deleted` in `volumes`, and any
/// mapping goes.
///
/// An attached volume is refused (`volume_attached`) unless `force`, which detaches it
/// first as a checkpointed step (the same `DetachVolume` as `detach`). deleteVolume is
/// synchronous; a volume CloudStack no longer has counts as deleted, so a retry after a
/// lost reply succeeds.
public struct DeleteHandler: EnvironmentOperationHandler {
    static let type = OperationType.delete
    static let firstStep = "looking at the volume in CloudStack before deleting"
    static let checkpointedSteps: [(key: String?, command: String)] = [("detach", "detachVolume")]

    static func describe(_ checkpoint: [String: Any], stepText: String?) -> String? {
        stepText.map { $0 + ", before deleteVolume" } ?? "deleting the volume in CloudStack"
    }

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        var force: Bool?
    }

    struct Checkpoint: Codable, Sendable {
        /// The forced detach, when one was started.
        var detach: StepProgress?
        /// What CloudStack said about the volume before it was deleted, so a resumed attempt
        /// can still record it in `volumes`.
        var name: String?
        var sizeBytes: Int64?
        var zoneId: String?

        enum CodingKeys: String, CodingKey {
            case detach, name
            case sizeBytes = "size_bytes"
            case zoneId = "zone_id"
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let force = try RequestDecoding.decode(Request.self, from: operation).force ?? false
        let checkpoint = try CheckpointWriter(context: context, empty: Checkpoint())

        if let current = try await environment.cloudStack.volume(id: volumeId) {
            if checkpoint.current.name == nil {
                try await checkpoint.update {
                    $0.name = current.name
                    $0.sizeBytes = current.size
                    $0.zoneId = current.zoneid.value
                }
            }
            if current.isAttached || checkpoint.current.detach?.jobId != nil {
                guard force else {
                    throw VolumeOperationFailure.volumeAttached(volumeId: volumeId, vmId: current.virtualmachineid?.value ?? "unknown")
                }
                _ = try await DetachVolume(environment: environment, context: context, volumeId: volumeId, force: true)
                    .run(in: checkpoint.slot(\.detach))
            }
            try context.checkCancellation()
            do {
                try await environment.cloudStack.deleteVolume(id: volumeId.value)
            } catch let error as CloudStackError where error.kind == .notFound {
                context.logger.notice("CloudStack no longer has the volume; counting it as deleted")
            }
        } else {
            context.logger.debug("CloudStack lists no such volume; already deleted")
        }

        let recorded = checkpoint.current
        let operationId = operation.id
        return try .completed([String: String]()) { connection in
            try await connection.query(
                VolumesTable.markDeleted(
                    volumeId: volumeId.value, name: recorded.name, sizeBytes: recorded.sizeBytes, zoneId: recorded.zoneId,
                    operationId: operationId),
                logger: context.logger)
            try await connection.query(DeviceMappingsTable.delete(volumeId: volumeId.value), logger: context.logger)
        }
    }
}
