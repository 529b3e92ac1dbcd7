import Metrics

/// What the CloudStack client records about its calls (the queue runtime knows nothing of CloudStack).
struct CloudStackMetrics: Sendable {
    /// One CloudStack API exchange, answered or not.
    func call(command: String, seconds: Double) {
        Timer(label: "volumed_cloudstack_request_duration_seconds", dimensions: [("command", command)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// A CloudStack call or async job that ended in an error, by its stable code.
    func error(command: String, code: String) {
        Counter(label: "volumed_cloudstack_errors_total", dimensions: [("command", command), ("error_code", code)]).increment()
    }
}
