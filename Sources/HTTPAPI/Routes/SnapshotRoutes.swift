import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Schema

/// The original daemon's snapshot tracking for test-failover rollback (CONTRACT §8):
/// `POST /snapshots/track`, `GET` and `DELETE /snapshots/vm/{vm_context_id}`,
/// `PUT /snapshots/{volume_uuid}`, with its request and response shapes and its 200s. The
/// columns live on `device_mappings` (migration 0006); a volume without a mapping is a 404.
/// These are the only rows the API writes itself: bookkeeping the replication engine keeps
/// about snapshots it took, with no CloudStack side effect, so nothing to queue.
struct SnapshotRoutes {
    let database: PostgresClient
    let logger: Logger
    let bodyLimit: Int

    static let statuses = ["none", "creating", "ready", "failed", "rollback_complete"]
    static let vmContextHint = "the replication engine's VM context id, e.g. \"ctx-pgtest1-20250909-113839\""

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.post("snapshots/track") { request, _ in
            let example = #"{"volume_uuid": "…", "vm_context_id": "ctx-pgtest1-20250909-113839", "snapshot_id": "…"}"#
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: example)
            let volumeId = try body.uuid("volume_uuid", of: "volume")
            let vmContext = try body.string("vm_context_id", hint: Self.vmContextHint)
            let snapshotId = try body.uuid("snapshot_id", of: "CloudStack volume snapshot")
            // Accepted as the original accepted them; it only logged them, and so does volumed.
            _ = try body.optionalString("snapshot_name", hint: "the snapshot's name in CloudStack")
            _ = try body.optionalString("disk_id", hint: "the source VM's disk id, e.g. \"disk-2000\"")
            let status = try Self.status(body, default: "ready") ?? "ready"
            let tracked = DeviceMappingsTable.trackSnapshot(volumeId: volumeId, vmContextId: vmContext, snapshotId: snapshotId,
                                                            status: status)
            guard try await !mappings(tracked).isEmpty else {
                throw Self.unmapped(volumeId)
            }
            return JSONResponse.make(.object([
                "message": "Volume snapshot tracked successfully", "volume_uuid": .string(volumeId),
                "snapshot_id": .string(snapshotId), "vm_context_id": .string(vmContext),
            ]))
        }
        api.get("snapshots/vm/{vm_context_id}") { _, context in
            let vmContext = try Self.vmContext(context)
            let snapshots = try await mappings(DeviceMappingsTable.byVMContext(vmContext)).map(Self.json)
            return JSONResponse.make(.object([
                "vm_context_id": .string(vmContext), "snapshots": .array(snapshots), "count": .int(Int64(snapshots.count)),
            ]))
        }
        api.delete("snapshots/vm/{vm_context_id}") { _, context in
            let vmContext = try Self.vmContext(context)
            let cleared = try await database.rows(DeviceMappingsTable.clearSnapshots(vmContextId: vmContext), logger: logger).count
            return JSONResponse.make(.object([
                "message": "VM volume snapshots cleared successfully", "vm_context_id": .string(vmContext),
                "snapshots_cleared": .int(Int64(cleared)),
            ]))
        }
        api.put("snapshots/{volume_uuid}") { request, context in
            let volumeId = try context.cloudStackID("volume_uuid", of: "volume")
            let example = #"{"snapshot_status": "rollback_complete"}"#
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: example)
            let snapshotId = try body.optionalUUID("snapshot_id", of: "CloudStack volume snapshot")
            _ = try body.optionalString("snapshot_name", hint: "the snapshot's name in CloudStack")
            let status = try Self.status(body, default: nil)
            guard snapshotId != nil || status != nil else {
                throw APIError.invalid("send what changes: field 'snapshot_status' (one of \(Self.statuses.joined(separator: ", "))) and/or 'snapshot_id', e.g. \(example)",
                                       details: ["field": "snapshot_status"])
            }
            let updated = DeviceMappingsTable.updateSnapshot(volumeId: volumeId, snapshotId: snapshotId, status: status)
            guard try await !mappings(updated).isEmpty else {
                throw Self.unmapped(volumeId)
            }
            return JSONResponse.make(.object(["message": "Volume snapshot updated successfully", "volume_uuid": .string(volumeId)]))
        }
    }

    private func mappings(_ query: PostgresQuery) async throws -> [DeviceMapping] {
        try await database.decodedRows(query, logger: logger) { try DeviceMapping(row: $0) }
    }

    /// `snapshot_status`, one of the five; `defaultValue` when absent or null.
    static func status(_ body: BodyFields, default defaultValue: String?) throws -> String? {
        guard let status = try body.optionalString("snapshot_status", maximumLength: 32, hint: "one of \(statuses.joined(separator: ", "))") else {
            return defaultValue
        }
        guard statuses.contains(status) else {
            throw APIError.invalidField("snapshot_status", "field 'snapshot_status' must be one of \(statuses.joined(separator: ", ")), got \"\(status)\"",
                                        provided: .string(status))
        }
        return status
    }

    /// The VM context from the path: one line of 1 to 255 characters.
    static func vmContext(_ context: BasicRequestContext) throws -> String {
        let raw = context.parameters.get("vm_context_id") ?? ""
        let text = raw.removingPercentEncoding ?? raw
        return try BodyFields(["vm_context_id": .string(text)]).string("vm_context_id", hint: vmContextHint)
    }

    static func unmapped(_ volumeId: String) -> APIError {
        APIError.notFound("volume \(volumeId) has no device mapping, so there is nothing to record a snapshot on; attach it through volumed first (POST /api/v1/volumes/\(volumeId)/attach)",
                          details: ["volume_uuid": .string(volumeId)])
    }

    /// The original's `VolumeSnapshotInfo`: `device_path` is the by-id link (as on the device
    /// routes), `operation_mode` `oma`/`failover`; `snapshot_id` and `snapshot_created_at` are
    /// left out when unset, as its `omitempty` did.
    static func json(_ row: DeviceMapping) -> JSONValue {
        var object: [String: JSONValue] = [
            "volume_uuid": .string(row.volumeId),
            "vm_context_id": .text(row.vmContextId),
            "device_path": .text(row.byIdPath),
            "operation_mode": .string(DeviceShape.originalMode(row.operationMode)),
            "snapshot_status": .string(row.snapshotStatus),
        ]
        if let snapshotId = row.snapshotId { object["snapshot_id"] = .string(snapshotId) }
        if let created = row.snapshotCreatedAt { object["snapshot_created_at"] = .time(created) }
        return .object(object)
    }
}
