import Devices
import CloudStack
import Foundation
import Logging
import PostgresNIO
import Schema

/// How one planned repair ended.
enum RepairOutcome: Sendable {
    case applied
    /// Not applied: the volume got an operation, or its row changed, after reconcile looked.
    case changed(String)
    case failed(String)
}

extension Reconciler {
    /// Applies one repair in a transaction of its own, after checking (inside it) that the
    /// volume has no unfinished operation and none finished since the snapshot, and that the
    /// row is still as read. A worker's own writes therefore always win: reconcile only ever
    /// changes what no operation has touched since it looked at CloudStack.
    func apply(_ repair: PlannedRepair, since: Date) async -> RepairOutcome {
        let volumeId = repair.action.volumeId ?? ""
        do {
            return try await database.inTransaction(logger: logger) { connection -> RepairOutcome in
                let untouched = try await connection.query(QueueSQL.untouched(volumeId: volumeId, since: since), logger: logger)
                    .collect().first?.decode(Bool.self) ?? false
                guard untouched else {
                    return .changed("an operation on volume \(volumeId) is pending, executing or finished after reconcile looked; "
                                    + "the next pass looks again")
                }
                switch repair.change {
                case .removeStaleMapping(let expected):
                    return try await removeStaleMapping(expected, connection: connection)
                case .adopt(let volume, let device):
                    return try await adopt(volume, device: device, connection: connection)
                case .updateDevice(let mapping, let device, let slot):
                    let rows = try await connection.query(
                        DeviceMappingsTable.updateDevice(mapping, devicePath: device.devicePath, byIdPath: device.byIdPath,
                                                         cloudStackDeviceId: slot),
                        logger: logger).collect()
                    return rows.isEmpty ? .changed("the mapping of volume \(volumeId) changed after reconcile read it") : .applied
                }
            }
        } catch {
            return .failed(String(describing: (error as? PostgresTransactionError)?.closureError ?? error))
        }
    }

    /// Removes the volume's active exports (entries, then rows, through the export remover)
    /// and its mapping, in the caller's transaction.
    private func removeStaleMapping(_ expected: DeviceMapping, connection: PostgresConnection) async throws -> RepairOutcome {
        let current = try await connection.query(DeviceMappingsTable.byVolume(expected.volumeId, forUpdate: true), logger: logger)
            .collect().first.map { try DeviceMapping(row: $0) }
        // Still where reconcile saw it (the API's snapshot columns may have changed meanwhile).
        guard let current, current.vmId == expected.vmId, current.operationMode == expected.operationMode,
              current.cloudStackDeviceId == expected.cloudStackDeviceId, current.byIdPath == expected.byIdPath,
              current.devicePath == expected.devicePath
        else {
            return .changed("the mapping of volume \(expected.volumeId) changed after reconcile read it")
        }
        let removed = try await BackendExportRemover(backend: exportBackend)
            .removeExports(volumeId: expected.volumeId, connection: connection, logger: logger)
        try await connection.query(DeviceMappingsTable.delete(volumeId: expected.volumeId), logger: logger)
        logger.notice("reconcile removed a stale mapping", metadata: [
            "volume_id": "\(expected.volumeId)", "vm_id": "\(expected.vmId)", "exports_removed": "\(removed)",
        ])
        return .applied
    }

    private func adopt(_ volume: CloudStackVolume, device: ResolvedDevice, connection: PostgresConnection) async throws -> RepairOutcome {
        guard let appliance = environment.applianceVMId else { return .failed("no appliance VM is configured") }
        let adoption = DeviceMappingsTable.adopt(
            volumeId: volume.id.value, vmId: appliance, cloudStackDeviceId: volume.deviceid, byIdPath: device.byIdPath,
            devicePath: device.devicePath, sizeBytes: Int64(device.sizeBytes))
        let inserted = try await connection.query(adoption, logger: logger).collect()
        guard !inserted.isEmpty else {
            return .changed("a mapping for volume \(volume.id) (or for \(device.byIdPath)) appeared after reconcile looked")
        }
        if volume.size > 0 {
            try await connection.query(
                VolumesTable.adopt(volumeId: volume.id.value, name: volume.name, sizeBytes: volume.size, zoneId: volume.zoneid.value,
                                   diskOfferingId: volume.diskofferingid?.value, state: volume.state),
                logger: logger)
        }
        logger.notice("reconcile adopted a volume attached outside volumed", metadata: [
            "volume_id": "\(volume.id)", "by_id_path": "\(device.byIdPath)", "device": "\(device.devicePath)",
        ])
        return .applied
    }
}
