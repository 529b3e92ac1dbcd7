import Metrics
import Prometheus
import Worker

/// The process-wide metrics backend of `volumed serve`: swift-metrics into a Prometheus
/// registry, served at `GET /metrics`. Bootstrapped at most once per process (swift-metrics
/// allows one bootstrap), on first use.
public enum MetricsSetup {
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Operations and by-id waits last seconds to minutes; CloudStack calls up to the 30 s timeout.
        let long: [Duration] = [.milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
                                .seconds(300), .seconds(600)]
        for label in WorkerMetrics.longDurationMetrics { factory.durationHistogramBuckets[label] = long }
        factory.durationHistogramBuckets["volumed_cloudstack_request_duration_seconds"] =
            [.milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
             .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)]
        MetricsSystem.bootstrap(factory)
        WorkerMetrics().registerZeroes()
        return registry
    }()
}
