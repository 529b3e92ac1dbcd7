import CloudStack
import Schema
import Worker

extension OperationType {
    public static let detach: OperationType = "detach"
}

/// `detach`: the volume comes off whatever VM holds it and its `device_mappings` row goes.
///
/// Idempotent: an already detached volume succeeds (and its stale mapping is removed). An
/// exported volume is refused unless `force` (see `DetachVolume`).
public struct DetachHandler: EnvironmentOperationHandler {
    static let type = OperationType.detach
    static let firstStep = "looking at the volume in CloudStack before detaching"
    static let checkpointedSteps: [(key: String?, command: String)] = [(nil, "detachVolume")]

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        var force: Bool?
    }

    struct Response: Encodable {
        /// The VM the volume was detached from; null when it was already detached.
        var vmId: CloudStackID?

        enum CodingKeys: String, CodingKey {
            case vmId = "vm_id"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(vmId, forKey: .vmId)
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let request = try RequestDecoding.decode(Request.self, from: operation)
        let vmId = try await DetachVolume(environment: environment, context: context, volumeId: volumeId, force: request.force ?? false)
            .run(in: .checkpoint(of: context))

        return try .completed(Response(vmId: vmId)) { connection in
            try await connection.query(DeviceMappingsTable.delete(volumeId: volumeId.value), logger: context.logger)
        }
    }
}
