import Metrics

/// What the by-id resolver records about its waits.
struct DeviceMetrics: Sendable {
    /// A wait for a by-id link to appear (`kind` "appear") or go (`kind` "removal").
    func byIdWait(kind: String, outcome: String, seconds: Double) {
        Timer(label: "volumed_by_id_wait_seconds", dimensions: [("kind", kind), ("outcome", outcome)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }
}
