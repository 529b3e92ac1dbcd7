import Foundation
@testable import HTTPAPI
import Testing

/// The console's server-side pieces that need no browser: the SVG charts and escaping.
struct ConsoleRenderingTests {
    static let start = Date(timeIntervalSince1970: 1_790_000_000)

    static func buckets(_ counts: [(Int, Int)]) -> [SVGChart.Bucket] {
        counts.enumerated().map { index, count in
            SVGChart.Bucket(start: start.addingTimeInterval(Double(index) * 300), completed: count.0, failed: count.1)
        }
    }

    /// The `(class, height)` of every bar, in order.
    static func bars(_ svg: String) -> [(String, Double)] {
        let pattern = /<rect class="(\w+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"\/>/
        return svg.matches(of: pattern).map { (String($0.output.1), Double($0.output.2)!) }
    }

    @Test func throughputBarsAreScaledToTheBusiestBucketWithFailuresOnTop() {
        let svg = SVGChart.throughput(Self.buckets([(0, 0), (1, 0), (3, 1), (0, 2)]), bucketMinutes: 5, label: "attach")
        let bars = Self.bars(svg)
        // Busiest bucket: 3 + 1 = 4 operations = the full 48 px.
        #expect(bars.map(\.0) == ["ok", "ok", "bad", "bad"])
        #expect(bars.map(\.1) == [12, 36, 12, 24])
        #expect(svg.contains("peak 4"))
        #expect(svg.contains(": 3 completed, 1 failed</title>"))
        #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>"))
    }

    @Test func anEmptyHourSaysSoInsteadOfDrawingNothing() {
        let svg = SVGChart.throughput(Self.buckets(Array(repeating: (0, 0), count: 12)), bucketMinutes: 5, label: "attach")
        #expect(Self.bars(svg).isEmpty)
        #expect(svg.contains("none finished in the last hour"))
        #expect(SVGChart.durations([]).contains("no completed operations in the last hour"))
    }

    @Test func durationBarsPutP50OverP95ScaledToTheSlowestP95() {
        let svg = SVGChart.durations([
            SVGChart.Durations(type: "attach", operations: 10, p50: 2, p95: 4),
            SVGChart.Durations(type: "create", operations: 3, p50: 8, p95: 8.8),
        ])
        let bars = Self.bars(svg)
        #expect(bars.map(\.0) == ["p95", "p50", "p95", "p50"])
        let plotWidth = SVGChart.width - 64 - 70
        let widths = svg.matches(of: /class="p\d\d" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/).map { Double($0.output.1)! }
        #expect(widths == [plotWidth * 4 / 8.8, plotWidth * 2 / 8.8, plotWidth, plotWidth * 8 / 8.8].map { ($0 * 10).rounded() / 10 })
        #expect(svg.contains(">2.0s / 4.0s<") && svg.contains(">8.0s / 8.8s<"))
        #expect(svg.contains("attach: p50 2.0s, p95 4.0s over 10 operations"))
    }

    @Test func labelsFromTheDatabaseAreEscaped() {
        let svg = SVGChart.durations([SVGChart.Durations(type: "<script>alert(1)</script>", operations: 1, p50: 1, p95: 1)])
        #expect(!svg.contains("<script>"))
        #expect(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(HTMLText.escape(#"a&b "c" 'd' <e>"#) == "a&amp;b &quot;c&quot; &#39;d&#39; &lt;e&gt;")
    }

    @Test func theContentSecurityPolicyAllowsExactlyThePagesOwnScriptAndStyle() {
        let policy = ConsoleRoutes.contentSecurityPolicy
        #expect(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"))
        #expect(ConsoleShell.page.contains("<script>" + ConsoleShell.script + "</script>"))
        #expect(ConsoleShell.page.contains("<style>" + ConsoleShell.css + "</style>"))
        #expect(!ConsoleShell.page.contains("http://") && !ConsoleShell.page.contains("https://"), "nothing fetched from elsewhere")
    }
}
