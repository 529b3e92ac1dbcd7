import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import Worker

/// `GET /metrics`: Prometheus text (the queue-depth gauge is sampled here, on scrape, so the
/// claim path never pays for it). `GET /api/v1/metrics`: the original daemon's JSON summary,
/// read from SQL.
struct MetricsRoutes {
    let reads: ReadSQL
    let registry: PrometheusCollectorRegistry
    let startedAt: Date
    let logger: Logger

    func add(to api: RouterGroup<BasicRequestContext>, root: Router<BasicRequestContext>) {
        root.get("metrics") { _, _ in
            do {
                _ = try await QueueDepth.sample(reads.client, logger: logger)
            } catch {
                // The rest of the metrics are still worth serving.
                logger.warning("queue depth not sampled", metadata: ["error": "\(String(reflecting: error))"])
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: registry.emitToString())))
        }
        api.get("metrics") { _, _ in
            JSONResponse.make(try await summary())
        }
    }

    /// `{timestamp, total_operations, pending_operations, active_mappings, operations_by_type,
    /// operations_by_status, average_response_time_ms, error_rate_percent, details}`.
    private func summary() async throws -> JSONValue {
        async let countsQuery = reads.operationCounts()
        async let statsQuery = reads.operationStats()
        async let totalsQuery = reads.mappingTotals()
        let (counts, stats, totals) = try await (countsQuery, statsQuery, totalsQuery)

        var byType: [String: Int64] = [:]
        var byStatus: [String: Int64] = [:]
        for row in counts {
            byType[row.type, default: 0] += row.count
            byStatus[row.status, default: 0] += row.count
        }
        let completed = counts.filter { $0.status == "completed" && $0.averageMilliseconds != nil }
        let completedCount = completed.reduce(0) { $0 + $1.count }
        let averageMilliseconds = completedCount == 0 ? 0
            : completed.reduce(0.0) { $0 + ($1.averageMilliseconds ?? 0) * Double($1.count) } / Double(completedCount)
        let finished = (byStatus["completed"] ?? 0) + (byStatus["failed"] ?? 0)
        let errorRate = finished == 0 ? 0 : Double(byStatus["failed"] ?? 0) / Double(finished) * 100

        let averageByType = counts.filter { $0.status == "completed" }.reduce(into: [String: JSONValue]()) { result, row in
            result[row.type] = row.averageMilliseconds.map(JSONValue.double) ?? .null
        }
        let durations: [JSONValue] = stats.map { row in
            .object([
                "window": .string(row.window), "type": .string(row.type), "status": .string(row.status),
                "operations": .int(row.operations), "retries": .int(row.retries),
                "p50_seconds": row.p50Seconds.map(JSONValue.double) ?? .null,
                "p95_seconds": row.p95Seconds.map(JSONValue.double) ?? .null,
            ])
        }
        let uptime = Int64(Date().timeIntervalSince(startedAt))
        return .object([
            "timestamp": .time(Date()),
            "total_operations": .int(byStatus.values.reduce(0, +)),
            "pending_operations": .int(byStatus["pending"] ?? 0),
            "active_mappings": .int(totals.mappings),
            "operations_by_type": .object(byType.mapValues(JSONValue.int)),
            "operations_by_status": .object(byStatus.mapValues(JSONValue.int)),
            "average_response_time_ms": .double(averageMilliseconds),
            "error_rate_percent": .double(errorRate),
            "details": .object([
                "executing_operations": .int(byStatus["executing"] ?? 0),
                "active_exports": .int(totals.activeExports),
                "average_duration_ms_by_type": .object(averageByType),
                "durations": .array(durations),
                "uptime_seconds": .int(uptime),
            ]),
        ])
    }
}
