import Foundation
import Logging
import PostgresNIO
import Schema

/// Every statement the web console runs, all reads (its one write, cancel, goes through
/// `VolumeClient.cancel`, the same `volume_operation_cancel` as SQL). Each stays on an index or
/// a small set, since every open page runs them every few seconds: unfinished rows (the
/// partial indexes of pending and executing rows), the last hour's finished rows (the
/// `completed_at` index; `volume_operation_stats` would read the whole table, having no index
/// on `created_at`), one operation's events (`volume_operation_events_operation`), and the
/// `volume_operations_stuck` and `volume_inventory` views.
struct ConsoleReads {
    let client: PostgresClient
    let logger: Logger

    /// Operations by type and status: unfinished ones all, those finished in the last hour
    /// with the p50/p95 of their durations (started → completed, as `volume_operation_stats`).
    struct Count: Sendable {
        let type: String
        let status: String
        let operations: Int64
        let p50: Double?
        let p95: Double?
    }

    func counts() async throws -> [Count] {
        let query: PostgresQuery = """
            SELECT type, status, count(*)::int8, NULL::float8, NULL::float8
            FROM volume_operations WHERE status IN ('pending', 'executing') GROUP BY type, status
            UNION ALL
            SELECT type, status, count(*)::int8,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))::float8,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))::float8
            FROM volume_operations WHERE completed_at > now() - interval '1 hour' GROUP BY type, status
            """
        return try await client.rows(query, logger: logger).map { row in
            let (type, status, operations, p50, p95) = try row.decode((String, String, Int64, Double?, Double?).self)
            return Count(type: type, status: status, operations: operations, p50: p50, p95: p95)
        }
    }

    /// The oldest pending operation: id, type and age in seconds.
    func oldestPending() async throws -> (id: UUID, type: String, ageSeconds: Double)? {
        let query: PostgresQuery = """
            SELECT id, type, extract(epoch FROM now() - created_at)::float8 FROM volume_operations
            WHERE status = 'pending' ORDER BY priority, seq LIMIT 1
            """
        guard let row = try await client.rows(query, logger: logger).first else { return nil }
        let (id, type, age) = try row.decode((UUID, String, Double).self)
        return (id, type, age)
    }

    /// Operations completed or failed per type and 5-minute bucket over the last hour (bucket 0
    /// is the latest five minutes), and the database's now.
    struct Finished: Sendable {
        let type: String
        let bucket: Int
        let completed: Int
        let failed: Int
    }

    func finishedLastHour() async throws -> (now: Date, rows: [Finished]) {
        let query: PostgresQuery = """
            SELECT now(), type,
                   least(floor(extract(epoch FROM now() - completed_at) / 300), 11)::int,
                   count(*) FILTER (WHERE status = 'completed')::int,
                   count(*) FILTER (WHERE status = 'failed')::int
            FROM volume_operations
            WHERE completed_at > now() - interval '1 hour' AND status IN ('completed', 'failed')
            GROUP BY 1, 2, 3
            """
        var now = Date()
        var rows: [Finished] = []
        for row in try await client.rows(query, logger: logger) {
            let (databaseNow, type, bucket, completed, failed) = try row.decode((Date, String, Int, Int, Int).self)
            now = databaseNow
            rows.append(Finished(type: type, bucket: bucket, completed: completed, failed: failed))
        }
        return (now, rows)
    }

    /// Executing operations (longest running first) and pending ones (in claim order).
    func unfinished(limit: Int = 200) async throws -> [OperationRecord] {
        try await client.decodedRows(QueueSQL.unfinished(limit: limit), logger: logger, OperationRecord.init)
    }

    func recentFailures(limit: Int = 20) async throws -> [OperationRecord] {
        try await client.decodedRows(QueueSQL.recentFailures(limit: limit), logger: logger, OperationRecord.init)
    }

    struct Stuck: Sendable {
        let id: UUID
        let type: String
        let status: String
        let volumeId: String?
        let reason: String
        let overdueSeconds: Double
    }

    /// `volume_operations_stuck`.
    func stuck() async throws -> [Stuck] {
        let query: PostgresQuery = """
            SELECT id, type, status, volume_id, reason, extract(epoch FROM overdue)::float8
            FROM volume_operations_stuck ORDER BY overdue DESC LIMIT 100
            """
        return try await client.rows(query, logger: logger).map { row in
            let (id, type, status, volumeId, reason, overdue) = try row.decode((UUID, String, String, String?, String, Double).self)
            return Stuck(id: id, type: type, status: status, volumeId: volumeId, reason: reason, overdueSeconds: overdue)
        }
    }

    /// One attached volume as `volume_inventory` shows it.
    struct Placement: Sendable {
        let volumeId: String
        let name: String?
        let vmId: String
        let mode: String
        let cloudStackDeviceId: Int?
        let byIdPath: String?
        let devicePath: String?
        let exportName: String?
        let nbdPort: Int?
        let exportVMName: String?
        let diskUnitNumber: Int?
    }

    func placements() async throws -> [Placement] {
        let query: PostgresQuery = """
            SELECT volume_id, name, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path,
                   export_name, nbd_port, export_vm_name, disk_unit_number
            FROM volume_inventory WHERE vm_id IS NOT NULL
            ORDER BY vm_id, operation_mode, cloudstack_device_id NULLS LAST, volume_id
            LIMIT 5000
            """
        return try await client.rows(query, logger: logger).map { row in
            let (volumeId, name, vmId, mode, deviceId, byId, device, export, port, exportVM, unit) =
                try row.decode((String, String?, String, String, Int?, String?, String?, String?, Int?, String?, Int?).self)
            return Placement(volumeId: volumeId, name: name, vmId: vmId, mode: mode, cloudStackDeviceId: deviceId,
                             byIdPath: byId, devicePath: device, exportName: export, nbdPort: port,
                             exportVMName: exportVM, diskUnitNumber: unit)
        }
    }

    /// Appliances whose workers have started (`volumed_appliances`), with seconds since seen.
    func appliances() async throws -> [(vmId: String, lastSeenSeconds: Double)] {
        let query: PostgresQuery = """
            SELECT vm_id, extract(epoch FROM now() - last_seen)::float8 FROM volumed_appliances ORDER BY vm_id
            """
        return try await client.rows(query, logger: logger).map { row in
            let (vmId, seen) = try row.decode((String, Double).self)
            return (vmId, seen)
        }
    }

    struct Event: Sendable {
        let at: Date
        let from: String?
        let to: String
        let worker: String?
        let detail: String?
    }

    /// An operation's whole life, oldest first.
    func events(operation id: UUID) async throws -> [Event] {
        let query: PostgresQuery = """
            SELECT at, from_status, to_status, worker, detail FROM volume_operation_events
            WHERE operation_id = \(id) ORDER BY id LIMIT 1000
            """
        return try await client.rows(query, logger: logger).map { row in
            let (at, from, to, worker, detail) = try row.decode((Date, String?, String, String?, String?).self)
            return Event(at: at, from: from, to: to, worker: worker, detail: detail)
        }
    }

    /// What changes the console shows without a notification: claims, checkpoints, cancel
    /// requests and retries of unfinished rows (completions and inserts notify). One short
    /// text, compared between polls; read from the partial index of unfinished rows.
    func unfinishedFingerprint() async throws -> String {
        let query: PostgresQuery = """
            SELECT coalesce(md5(string_agg(id::text || status || attempts || coalesce(checkpoint::text, '')
                                           || coalesce(cancel_requested_at::text, '') || run_after::text, ',' ORDER BY seq)), '')
            FROM volume_operations WHERE status IN ('pending', 'executing')
            """
        return try await client.rows(query, logger: logger).first?.decode(String.self) ?? ""
    }

    func recentlyFinished(limit: Int = 15) async throws -> [OperationRecord] {
        try await client.decodedRows(QueueSQL.recentlyFinished(limit: limit), logger: logger, OperationRecord.init)
    }
}
