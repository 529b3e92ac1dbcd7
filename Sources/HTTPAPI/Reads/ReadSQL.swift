import Foundation
import Logging
import PostgresNIO
import Schema

/// What the API's GET routes read: the tables' statements (Schema's `*Table`, `QueueSQL`)
/// and the metrics summary's aggregates. All are reads; writes go through
/// `VolumeClient.enqueue` only (and the snapshot columns, `SnapshotRoutes`).
struct ReadSQL {
    let client: PostgresClient
    let logger: Logger

    func mapping(volumeId: String) async throws -> DeviceMapping? {
        try await client.decodedRows(DeviceMappingsTable.byVolume(volumeId), logger: logger) { try DeviceMapping(row: $0) }.first
    }

    func mapping(devicePath path: String) async throws -> DeviceMapping? {
        try await client.decodedRows(DeviceMappingsTable.byDevicePath(path), logger: logger) { try DeviceMapping(row: $0) }.first
    }

    func mappings(vmId: String) async throws -> [DeviceMapping] {
        try await client.decodedRows(DeviceMappingsTable.byVM(vmId), logger: logger) { try DeviceMapping(row: $0) }
    }

    func volume(_ volumeId: String) async throws -> VolumeRecord? {
        try await client.decodedRows(VolumesTable.byId(volumeId), logger: logger, VolumeRecord.init).first
    }

    /// The newest operation of each volume in `volumeIds`.
    func lastOperations(volumeIds: [String]) async throws -> [String: OperationRecord] {
        guard !volumeIds.isEmpty else { return [:] }
        let records = try await client.decodedRows(QueueSQL.lastOperations(volumeIds: volumeIds), logger: logger, OperationRecord.init)
        return Dictionary(records.compactMap { record in record.volumeId.map { ($0, record) } }) { first, _ in first }
    }

    func export(volumeId: String) async throws -> ExportMapping? {
        try await client.decodedRows(ExportMappingsTable.latestByVolume(volumeId), logger: logger, ExportMapping.init).first
    }

    func exports(volumeId: String?, status: String?, vmName: String?, limit: Int) async throws -> [ExportMapping] {
        try await client.decodedRows(ExportMappingsTable.list(volumeId: volumeId, status: status, vmName: vmName, limit: limit),
                                     logger: logger, ExportMapping.init)
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
        return try await client.rows(query, logger: logger).map { row in
            let (type, status, count, average) = try row.decode((String, String, Int64, Double?).self)
            return TypeStatusCount(type: type, status: status, count: count, averageMilliseconds: average)
        }
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
        return try await client.rows(query, logger: logger).map { row in
            let (window, type, status, operations, p50, p95, retries) = try row.decode((String, String, String, Int64, Double?, Double?, Int64).self)
            return StatsRow(window: window, type: type, status: status, operations: operations,
                            p50Seconds: p50, p95Seconds: p95, retries: retries)
        }
    }

    /// Device mappings and active exports, for the summary's totals.
    func mappingTotals() async throws -> (mappings: Int64, activeExports: Int64) {
        guard let totals = try await client.rows(DeviceMappingsTable.totals(), logger: logger).first?.decode((Int64, Int64).self)
        else { return (0, 0) }
        return (totals.0, totals.1)
    }
}
