import Metrics

/// The worker's metrics (swift-metrics; exported by whatever backend the process installs).
struct WorkerMetrics: Sendable {
    func finished(type: String, status: String, seconds: Double) {
        Counter(label: "volumed_operations_total", dimensions: [("type", type), ("status", status)]).increment()
        Timer(label: "volumed_operation_duration_seconds", dimensions: [("type", type)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func retried(type: String, code: String) {
        Counter(label: "volumed_retries_total", dimensions: [("type", type), ("error_code", code)]).increment()
    }

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
}
