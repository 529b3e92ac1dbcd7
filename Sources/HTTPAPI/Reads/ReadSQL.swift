import Foundation
import Logging
import PostgresNIO
import Schema

/// Every statement the API's GET routes run, in one place. All are reads; writes go through
/// `VolumeClient.enqueue` only.
struct ReadSQL {
    let client: PostgresClient
    let logger: Logger

    func mapping(volumeId: String) async throws -> DeviceMappingRow? {
        try await rows("SELECT \(DeviceMappingRow.columns) FROM device_mappings WHERE volume_id = $1", [volumeId],
                       DeviceMappingRow.init).first
    }

    /// The mapping whose by-id link or current device is `path` (the by-id link first).
    func mapping(devicePath path: String) async throws -> DeviceMappingRow? {
        try await rows("""
            SELECT \(DeviceMappingRow.columns) FROM device_mappings
            WHERE by_id_path = $1 OR device_path = $1
            ORDER BY (by_id_path = $1) DESC NULLS LAST LIMIT 1
            """, [path], DeviceMappingRow.init).first
    }

    func mappings(vmId: String) async throws -> [DeviceMappingRow] {
        try await rows("SELECT \(DeviceMappingRow.columns) FROM device_mappings WHERE vm_id = $1 ORDER BY attached_at, volume_id",
                       [vmId], DeviceMappingRow.init)
    }

    func volume(_ volumeId: String) async throws -> VolumeRow? {
        try await rows("SELECT \(VolumeRow.columns) FROM volumes WHERE volume_id = $1", [volumeId], VolumeRow.init).first
    }

    /// The newest operation of each volume in `volumeIds`.
    func lastOperations(volumeIds: [String]) async throws -> [String: OperationRecord] {
        guard !volumeIds.isEmpty else { return [:] }
        var bindings = PostgresBindings()
        bindings.append(volumeIds)
        let query = PostgresQuery(unsafeSQL: """
            SELECT DISTINCT ON (volume_id) \(OperationRecord.columns) FROM volume_operations
            WHERE volume_id = ANY($1::text[])
            ORDER BY volume_id, created_at DESC, seq DESC
            """, binds: bindings)
        var records: [String: OperationRecord] = [:]
        for row in try await client.rows(query, logger: logger) {
            let record = try OperationRecord(row: row)
            if let volumeId = record.volumeId { records[volumeId] = record }
        }
        return records
    }

    /// The active export of a volume, else its most recently removed one.
    func export(volumeId: String) async throws -> ExportRow? {
        try await rows("""
            SELECT \(ExportRow.columns) FROM vm_export_mappings WHERE volume_id = $1
            ORDER BY (status = 'active') DESC, updated_at DESC, id DESC LIMIT 1
            """, [volumeId], ExportRow.init).first
    }

    func exports(volumeId: String?, status: String?, vmName: String?, limit: Int) async throws -> [ExportRow] {
        var bindings = PostgresBindings()
        bindings.append(volumeId)
        bindings.append(status)
        bindings.append(vmName)
        bindings.append(limit)
        let query = PostgresQuery(unsafeSQL: """
            SELECT \(ExportRow.columns) FROM vm_export_mappings
            WHERE ($1::text IS NULL OR volume_id = $1) AND ($2::text IS NULL OR status = $2)
              AND ($3::text IS NULL OR vm_name = $3)
            ORDER BY created_at DESC, id DESC
            LIMIT $4
            """, binds: bindings)
        var exports: [ExportRow] = []
        for row in try await client.rows(query, logger: logger) { exports.append(try ExportRow(row: row)) }
        return exports
    }

    /// A statement that needs the server: the database health check.
    func ping() async throws {
        _ = try await client.rows("SELECT 1", logger: logger)
    }

    // MARK: The JSON metrics summary

    struct TypeStatusCount: Sendable {
        let type: String
        let status: String
        let count: Int64
        /// Mean started → completed time of the finished rows, milliseconds.
        let averageMilliseconds: Double?
    }

    func operationCounts() async throws -> [TypeStatusCount] {
        let query: PostgresQuery = """
            SELECT type, status, count(*)::int8,
                   (avg(extract(epoch FROM completed_at - started_at)) * 1000)::float8
            FROM volume_operations GROUP BY type, status ORDER BY type, status
            """
        var counts: [TypeStatusCount] = []
        for row in try await client.rows(query, logger: logger) {
            let (type, status, count, average) = try row.decode((String, String, Int64, Double?).self)
            counts.append(TypeStatusCount(type: type, status: status, count: count, averageMilliseconds: average))
        }
        return counts
    }

    struct StatsRow: Sendable {
        let window: String
        let type: String
        let status: String
        let operations: Int64
        let p50Seconds: Double?
        let p95Seconds: Double?
        let retries: Int64
    }

    /// The `volume_operation_stats` dashboard view (CONTRACT §5), both windows.
    func operationStats() async throws -> [StatsRow] {
        let query: PostgresQuery = """
            SELECT window_name, type, status, operations::int8, p50_seconds::float8, p95_seconds::float8, retries::int8
            FROM volume_operation_stats
            """
        var stats: [StatsRow] = []
        for row in try await client.rows(query, logger: logger) {
            let (window, type, status, operations, p50, p95, retries) = try row.decode((String, String, String, Int64, Double?, Double?, Int64).self)
            stats.append(StatsRow(window: window, type: type, status: status, operations: operations,
                                  p50Seconds: p50, p95Seconds: p95, retries: retries))
        }
        return stats
    }

    /// Device mappings and active exports, for the summary's totals.
    func mappingTotals() async throws -> (mappings: Int64, activeExports: Int64) {
        let query: PostgresQuery = """
            SELECT (SELECT count(*) FROM device_mappings)::int8,
                   (SELECT count(*) FROM vm_export_mappings WHERE status = 'active')::int8
            """
        guard let totals = try await client.rows(query, logger: logger).first?.decode((Int64, Int64).self) else { return (0, 0) }
        return (totals.0, totals.1)
    }

    private func rows<T>(_ sql: String, _ values: [String], _ decode: (PostgresRow) throws -> T) async throws -> [T] {
        var bindings = PostgresBindings()
        for value in values { bindings.append(value) }
        return try await client.rows(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).map(decode)
    }
}
