import Primitives
import Foundation
import Schema
import Worker

extension OperationType {
    public static let attach: OperationType = "attach"
}

/// `attach`: a volume attached to a VM, with its `device_mappings` row.
///
/// - The attach itself is `AttachVolume`. Already attached to that VM: for the appliance the
///   by-id link is resolved again, so a link re-pointed after a reboot refreshes `device_path`.
/// - `attach_as: "root"` (or `device_id: 0`): the test-failover root disk, to a Stopped VM only.
/// - The mapping: see `AttachVolume.placement(of:)`.
/// - `export: true` on the appliance: also serves the volume over NBD as the original
///   daemon's attach did (see `ApplianceExport`); ignored on any other VM.
public struct AttachHandler: EnvironmentOperationHandler {
    static let type = OperationType.attach
    static let firstStep = "looking at the volume in CloudStack before attaching"
    static let checkpointedSteps: [(key: String?, command: String)] = [(nil, "attachVolume")]

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        /// CloudStack's device slot; nil lets CloudStack pick the next free one.
        var deviceId: Int?
        /// `"root"`: attach as the root disk (device 0), the original daemon's attach-root.
        var attachAs: String?
        /// The replication engine's VM context, recorded on the mapping for snapshot tracking
        /// (the original read it from a database it shared with its callers).
        var vmContextId: String?
        /// Publish `migration-vol-<volume_id>` once the volume is on the appliance.
        var export: Bool?

        enum CodingKeys: String, CodingKey {
            case deviceId = "device_id"
            case attachAs = "attach_as"
            case vmContextId = "vm_context_id"
            case export
        }
    }

    struct Response: Encodable {
        /// The stable by-id path on the appliance; null on a remote VM.
        var devicePath: String?
        /// What the by-id link resolves to now; null on a remote VM.
        var realDevice: String?
        var cloudStackDeviceId: Int?
        var operationMode: String
        /// Present when the attach asked for an export and landed on the appliance.
        var export: ApplianceExport.Outcome?

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
            try export?.encode(to: encoder)
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let vmId = try RequestDecoding.vmId(of: operation)
        // Decoded and checked once, before anything is sent to CloudStack.
        let request = try RequestDecoding.decode(Request.self, from: operation)
        let deviceId = try Self.requestedDeviceId(request)
        let vmContextId = try Self.requestedVMContextId(request)
        let attach = AttachVolume(environment: environment, context: context, volumeId: volumeId, vmId: vmId, deviceId: deviceId)

        let volume = try await attach.run(in: .checkpoint(of: context))
        try context.checkCancellation()

        var placement = try await attach.placement(of: volume)
        placement.vmContextId = vmContextId
        let upsertMapping = placement.upsertMapping(context: context)
        var exported: ApplianceExport.Result?
        if request.export == true, placement.mode == "appliance",
           let byIdPath = placement.byIdPath
        {
            exported = try await ApplianceExport(exporter: environment.exporter).export(
                volumeId: volumeId.value, applianceVMId: placement.vmId.value, byIdPath: byIdPath,
                sizeBytes: UInt64(max(placement.sizeBytes, 0)), context: context)
        }
        let response = Response(
            devicePath: placement.byIdPath, realDevice: placement.devicePath,
            cloudStackDeviceId: placement.cloudStackDeviceId, operationMode: placement.mode, export: exported?.outcome)
        let recordExport = exported?.commit
        return try .completed(response) { connection in
            try await upsertMapping(connection)
            try await recordExport?(connection)
        }
    }

    /// `vm_context_id`: one line of text (the engine's context names, e.g. `ctx-pgtest1-20250909-113839`).
    static func requestedVMContextId(_ request: Request) throws -> String? {
        guard let context = request.vmContextId else { return nil }
        guard !context.trimmingCharacters(in: .whitespaces).isEmpty, context.count <= 255,
              !context.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw QueueFailure.invalidRequest(
                "field 'vm_context_id' must be one line of 1 to 255 characters without control characters, e.g. \"ctx-pgtest1-20250909-113839\"; got \(quotedForMessage(context))")
        }
        return context
    }

    /// `device_id` (0, 1, 2, 4 and up: 3 is CloudStack's CD-ROM slot) or `attach_as: "root"`
    /// (device 0); both together must agree.
    static func requestedDeviceId(_ request: Request) throws -> Int? {
        if let deviceId = request.deviceId, deviceId < 0 {
            throw QueueFailure.invalidRequest("field 'device_id' must be 0 (root) or a positive CloudStack device slot, got \(deviceId)")
        }
        if request.deviceId == 3 {
            // VolumeApiServiceImpl.getDeviceId refuses 3 ("deviceId should be 0,1,2,4-N"): the CD-ROM has it.
            throw QueueFailure.invalidRequest(
                "field 'device_id' cannot be 3: CloudStack reserves device 3 for the CD-ROM; use 1, 2 or 4 and up, or leave it out")
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
