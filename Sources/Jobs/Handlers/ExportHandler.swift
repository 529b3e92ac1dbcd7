import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

/// `export`: serves a volume attached to this appliance over NBD, under the name
/// `migration-vol-<volume_id>`, for a replication peer writing the disk `disk_unit_number`
/// of the source VM `vm_id`.
///
/// Every step is safe to repeat (a retry or a rescued operation runs it again): publishing
/// re-points the entry atomically, the handshake only reads, and the mapping row is
/// written in the transaction that completes the operation, so a row never exists for an
/// export that was not checked, nor a completed export without its row.
public struct ExportHandler: OperationHandler {
    public let backend: any NBDExportBackend
    /// Where the handshake check connects: the appliance itself, whatever address the NBD
    /// server listens on for peers.
    public let checkHost: String
    public let checkTimeout: Duration
    /// Re-resolves the mapping's by-id link before anything is published (see
    /// `ByIdResolver.verifiedDevice`); its `allowsRegularFiles` is the test/demo setting.
    public let resolver: ByIdResolver

    public init(backend: any NBDExportBackend, resolver: ByIdResolver = ByIdResolver(), checkHost: String = "127.0.0.1",
                checkTimeout: Duration = .seconds(5)) {
        self.backend = backend
        self.resolver = resolver
        self.checkHost = checkHost
        self.checkTimeout = checkTimeout
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

        let mapping = try await context.database.decodedRows(ExportMappingSQL.deviceMapping(volumeId: volumeId), logger: logger) {
            let (vm, mode, byId, size) = try $0.decode((String, String, String?, Int64?).self)
            return VolumeDeviceMapping(vmId: vm, operationMode: mode, byIdPath: byId, sizeBytes: size)
        }.first
        guard let mapping, mapping.operationMode == "appliance", let byIdPath = mapping.byIdPath else {
            throw ExportOperationFailure.volumeNotOnAppliance(volumeId: volumeId, mapping: mapping)
        }
        // Before anything is published or re-published: the link must still lead to the disk
        // the attach verified. On failure nothing changes, an existing export included.
        let device = try resolver.verifiedDevice(byIdPath: byIdPath, volumeId: volumeId, expectedSize: mapping.sizeBytes)

        let active = try await context.database.decodedRows(
            ExportMappingSQL.activeConflicts(vmId: vmId, diskUnitNumber: request.diskUnitNumber, exportName: exportName),
            logger: logger, ExportMapping.init)
        if let existing = active.first(where: { $0.vmId == vmId && $0.diskUnitNumber == request.diskUnitNumber }),
            existing.volumeId == volumeId, existing.exportName == exportName
        {
            return try await reuse(existing, byIdPath: byIdPath, context: context)
        }
        if let existing = active.first {
            // Our own entry may be left from an earlier attempt that lost the race for this
            // (VM, disk) at commit; without an active row it must not keep serving.
            if !active.contains(where: { $0.exportName == exportName }) {
                try await backend.remove(exportName: exportName)
            }
            throw ExportOperationFailure.conflict(
                requested: "export of volume \(volumeId) for VM \(vmId) disk \(request.diskUnitNumber)", existing: existing)
        }

        try context.checkCancellation()
        try await backend.publish(exportName: exportName, devicePath: byIdPath)
        do {
            let size = try await NBDHandshake.check(host: checkHost, port: backend.port, exportName: exportName, timeout: checkTimeout)
            // What the server serves now must still be the disk just verified (the link could
            // have been re-pointed between the check and the publish).
            guard size == device.sizeBytes else {
                throw DeviceError(.deviceMismatch,
                                  "export \(exportName) serves \(size) bytes through \(byIdPath), but the verified disk has "
                                    + "\(device.sizeBytes); the by-id link changed while exporting: check it and export again")
            }
            logger.info("export published", metadata: [
                "export": "\(exportName)", "device": "\(byIdPath)", "resolves_to": "\(device.devicePath)", "size": "\(size)",
            ])
        } catch {
            // Nothing records this entry yet: withdraw it rather than serve a disk no row accounts for.
            try? await backend.remove(exportName: exportName)
            throw error
        }

        let port = backend.port
        return try .completed(
            Response(exportName: exportName, nbdPort: port, devicePath: byIdPath, reused: false)
        ) { connection in
            try await connection.query(
                ExportMappingSQL.upsertActive(
                    vmId: vmId, diskUnitNumber: request.diskUnitNumber, volumeId: volumeId, exportName: exportName,
                    devicePath: byIdPath, nbdPort: port, jobId: request.jobId, vmName: request.vmName),
                logger: logger)
        }
    }

    /// The same (VM, disk) is already exported from this volume: hand back what exists.
    /// Only the backend entry is checked, and recreated when it went missing (an operator
    /// cleaned the directory, a restore): the row is the truth, the entry follows it.
    private func reuse(_ existing: ExportMapping, byIdPath: String, context: OperationContext) async throws -> OperationOutcome {
        let entries = try await backend.listExports()
        if !entries.contains(where: { $0.name == existing.exportName }) {
            context.logger.notice("active export had no backend entry; recreating it",
                                  metadata: ["export": "\(existing.exportName)", "device": "\(byIdPath)"])
            try await backend.publish(exportName: existing.exportName, devicePath: byIdPath)
        }
        _ = try await NBDHandshake.check(host: checkHost, port: backend.port, exportName: existing.exportName, timeout: checkTimeout)
        return try .completed(
            Response(exportName: existing.exportName, nbdPort: existing.nbdPort, devicePath: existing.devicePath, reused: true))
    }
}
