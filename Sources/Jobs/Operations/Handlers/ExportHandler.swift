import NBD
import Devices
import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

extension OperationType {
    public static let export: OperationType = "export"
}

/// `export`: serves a volume attached to this appliance over NBD, under the name
/// `migration-vol-<volume_id>`, for a replication peer writing the disk `disk_unit_number`
/// of the source VM `vm_id`.
/// Safe to repeat, as `ExportPublisher` says.
public struct ExportHandler: RegisteredOperationHandler {
    static let type = OperationType.export
    static let firstStep = "exporting the by-id link over NBD"

    public let publisher: ExportPublisher
    public var backend: any NBDExportBackend { publisher.backend }
    /// Re-resolves the mapping's by-id link before anything is published (see
    /// `ByIdResolver.verifiedDevice`); its `allowsRegularFiles` is the test/demo setting.
    public let resolver: ByIdResolver

    public init(backend: any NBDExportBackend, resolver: ByIdResolver = ByIdResolver(), checkHost: String = "127.0.0.1",
                checkTimeout: Duration = .seconds(5)) {
        self.publisher = ExportPublisher(backend: backend, checkHost: checkHost, checkTimeout: checkTimeout)
        self.resolver = resolver
    }

    init?(environment: OperationEnvironment, exportBackend: (any NBDExportBackend)?) {
        guard let exportBackend else { return nil }
        self.init(backend: exportBackend, resolver: environment.resolver)
    }

    struct Response: Encodable {
        let exportName: String
        let nbdPort: Int
        let devicePath: String
        let reused: Bool

        enum CodingKeys: String, CodingKey {
            case exportName = "export_name"
            case nbdPort = "nbd_port"
            case devicePath = "device_path"
            case reused
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let request = try ExportRequest.parse(operation)
        let volumeId = try ExportTarget.volumeId(of: operation)
        guard let vmId = operation.vmId, !vmId.isEmpty else {
            throw QueueFailure.invalidRequest("an export operation needs the vm_id column set to the source VM's UUID")
        }
        let exportName = try ExportName.forVolume(volumeId)
        let logger = context.logger

        let mapping = try await context.database.decodedRows(DeviceMappingsTable.byVolume(volumeId), logger: logger) {
            try DeviceMapping(row: $0)
        }.first
        guard let mapping, mapping.operationMode == "appliance", let byIdPath = mapping.byIdPath else {
            throw VolumeOperationFailure.volumeNotOnAppliance(volumeId: volumeId, mapping: mapping)
        }
        // Before anything is published or re-published: the link must still lead to the disk
        // the attach verified. On failure nothing changes, an existing export included.
        let device = try resolver.verifiedDevice(byIdPath: byIdPath, volumeId: volumeId, expectedSize: mapping.sizeBytes)

        let active = try await context.database.decodedRows(
            ExportMappingsTable.activeConflicts(vmId: vmId, diskUnitNumber: request.diskUnitNumber, exportName: exportName),
            logger: logger, ExportMapping.init)
        if let existing = active.first(where: { $0.vmId == vmId && $0.diskUnitNumber == request.diskUnitNumber }),
            existing.volumeId == volumeId, existing.exportName == exportName
        {
            try await publisher.ensureServing(exportName: existing.exportName, devicePath: byIdPath, expectedSize: device.sizeBytes,
                                              context: context)
            return try .completed(
                Response(exportName: existing.exportName, nbdPort: existing.nbdPort, devicePath: existing.devicePath, reused: true))
        }
        // The export an attach to the appliance made (keyed to the appliance itself, which
        // holds the volume) is this volume's own entry under a placeholder identity: the
        // source VM's export takes it over, same entry, its row re-keyed at commit.
        let attachments = active.filter { $0.exportName == exportName && $0.volumeId == volumeId && $0.vmId == mapping.vmId }
        let conflicts = active.filter { row in !attachments.contains(where: { $0.id == row.id }) }
        if let existing = conflicts.first {
            // Our own entry may be left from an earlier attempt that lost the race for this
            // (VM, disk) at commit; without an active row it must not keep serving.
            if !active.contains(where: { $0.exportName == exportName }) {
                try await backend.remove(exportName: exportName)
            }
            throw VolumeOperationFailure.conflict(
                requested: "export of volume \(volumeId) for VM \(vmId) disk \(request.diskUnitNumber)", existing: existing)
        }

        if attachments.isEmpty {
            try await publisher.publishChecked(exportName: exportName, devicePath: byIdPath, expectedSize: device.sizeBytes, context: context)
        } else {
            logger.info("taking over the export the attach made", metadata: ["export": "\(exportName)", "vm_id": "\(vmId)"])
            try await publisher.ensureServing(exportName: exportName, devicePath: byIdPath, expectedSize: device.sizeBytes, context: context)
        }

        let port = backend.port
        return try .completed(
            Response(exportName: exportName, nbdPort: port, devicePath: byIdPath, reused: !attachments.isEmpty)
        ) { connection in
            try await connection.query(
                ExportMappingsTable.upsertActive(
                    vmId: vmId, diskUnitNumber: request.diskUnitNumber, volumeId: volumeId, exportName: exportName,
                    devicePath: byIdPath, nbdPort: port, jobId: request.jobId, vmName: request.vmName),
                logger: logger)
        }
    }
}
