import Metrics

/// Every metric volumed records, in one place (swift-metrics; `volumed serve` exports them
/// as Prometheus text at `GET /metrics`, other processes record into whatever backend they
/// install, by default none). Labels are fixed per name: Prometheus refuses one name with
/// two label sets.
public struct WorkerMetrics: Sendable {
    public init() {}

    /// Names whose buckets differ from the backend's default (5 ms … 10 s): operations and
    /// by-id waits last seconds to minutes.
    public static let longDurationMetrics = ["volumed_operation_duration_seconds", "volumed_by_id_wait_seconds"]

    // MARK: Queue

    func finished(type: String, status: String, seconds: Double) {
        Counter(label: "volumed_operations_total", dimensions: [("type", type), ("status", status)]).increment()
        Timer(label: "volumed_operation_duration_seconds", dimensions: [("type", type)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func retried(type: String, code: String) {
        Counter(label: "volumed_retries_total", dimensions: [("type", type), ("error_code", code)]).increment()
    }

    /// Once per claim statement that returned rows, never per row.
    func claimed(count: Int, seconds: Double) {
        Timer(label: "volumed_claim_duration_seconds").recordNanoseconds(Int64(seconds * 1e9))
        Counter(label: "volumed_claimed_total").increment(by: count)
    }

    func rescued(count: Int) {
        Counter(label: "volumed_rescued_total").increment(by: count)
    }

    func leaseLost() {
        Counter(label: "volumed_leases_lost_total").increment()
    }

    func inFlight(_ count: Int) {
        Gauge(label: "volumed_in_flight_operations").record(count)
    }

    /// Pending and executing rows in the whole queue (all workers), sampled by `QueueDepth`.
    func queueDepth(pending: Int, executing: Int) {
        Gauge(label: "volumed_queue_depth", dimensions: [("status", "pending")]).record(pending)
        Gauge(label: "volumed_queue_depth", dimensions: [("status", "executing")]).record(executing)
    }

    /// Registers the counters that have no labels at zero, so a scrape shows them (and rate()
    /// works) before the first event.
    public func registerZeroes() {
        for label in ["volumed_rescued_total", "volumed_leases_lost_total", "volumed_claimed_total"] {
            Counter(label: label).increment(by: 0)
        }
    }
}
