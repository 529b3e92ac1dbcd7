import Foundation

/// The console's small charts, drawn here as SVG text: no script, no library, nothing to
/// fetch, so they work on an appliance without internet and inside the page's HTML.
/// Colours come from the page's CSS classes (`ok`, `bad`, `p50`, `p95`).
enum SVGChart {
    /// Operations that finished in one slice of time.
    struct Bucket: Sendable, Equatable {
        var start: Date
        var completed: Int
        var failed: Int
    }

    /// One type's durations over the window, seconds.
    struct Durations: Sendable, Equatable {
        var type: String
        var operations: Int
        var p50: Double
        var p95: Double
    }

    static let width = 240.0
    static let plotHeight = 48.0

    /// Columns of finished operations per bucket, completed below and failed stacked on top,
    /// all scaled to the busiest bucket; each column's tooltip gives its numbers.
    static func throughput(_ buckets: [Bucket], bucketMinutes: Int, label: String) -> String {
        let height = plotHeight + 14
        var svg = open(height: height, label: "\(label): operations finished per \(bucketMinutes) minutes over the last hour")
        let busiest = buckets.map { $0.completed + $0.failed }.max() ?? 0
        guard busiest > 0, !buckets.isEmpty else {
            svg += #"<text class="empty" x="\#(HTMLText.number(width / 2))" y="\#(HTMLText.number(plotHeight / 2 + 4))" text-anchor="middle">none finished in the last hour</text>"#
            return svg + axis(height: height) + "</svg>"
        }
        let slot = width / Double(buckets.count)
        let barWidth = max(1, slot - 2)
        let time = Date.FormatStyle().hour(.twoDigits(amPM: .omitted)).minute(.twoDigits)
        for (index, bucket) in buckets.enumerated() {
            let x = Double(index) * slot + 1
            let completedHeight = plotHeight * Double(bucket.completed) / Double(busiest)
            let failedHeight = plotHeight * Double(bucket.failed) / Double(busiest)
            svg += "<g><title>\(HTMLText.escape(bucket.start.formatted(time))) +\(bucketMinutes)m: \(bucket.completed) completed, \(bucket.failed) failed</title>"
            if bucket.completed > 0 {
                svg += rect(class: "ok", x: x, y: plotHeight - completedHeight, width: barWidth, height: completedHeight)
            }
            if bucket.failed > 0 {
                svg += rect(class: "bad", x: x, y: plotHeight - completedHeight - failedHeight, width: barWidth, height: failedHeight)
            }
            svg += "</g>"
        }
        svg += #"<text class="peak" x="2" y="10">peak \#(busiest)</text>"#
        return svg + axis(height: height) + "</svg>"
    }

    /// One row per type: the p95 bar behind the p50 bar, scaled to the slowest p95.
    static func durations(_ rows: [Durations]) -> String {
        let rowHeight = 18.0
        let labelWidth = 64.0
        let height = max(rowHeight, rowHeight * Double(rows.count))
        var svg = open(height: height, label: "p50 and p95 duration per type over the last hour")
        let slowest = rows.map(\.p95).max() ?? 0
        guard slowest > 0 else {
            svg += #"<text class="empty" x="\#(HTMLText.number(width / 2))" y="13" text-anchor="middle">no completed operations in the last hour</text>"#
            return svg + "</svg>"
        }
        let plotWidth = width - labelWidth - 70
        for (index, row) in rows.enumerated() {
            let y = Double(index) * rowHeight
            let p95Width = plotWidth * row.p95 / slowest
            let p50Width = plotWidth * min(row.p50, row.p95) / slowest
            svg += "<g><title>\(HTMLText.escape(row.type)): p50 \(seconds(row.p50)), p95 \(seconds(row.p95)) over \(row.operations) operations</title>"
            svg += #"<text x="0" y="\#(HTMLText.number(y + 13))">\#(HTMLText.escape(row.type))</text>"#
            svg += rect(class: "p95", x: labelWidth, y: y + 3, width: max(p95Width, 1), height: rowHeight - 6)
            svg += rect(class: "p50", x: labelWidth, y: y + 3, width: max(p50Width, 1), height: rowHeight - 6)
            svg += #"<text x="\#(HTMLText.number(labelWidth + plotWidth + 4))" y="\#(HTMLText.number(y + 13))">\#(seconds(row.p50)) / \#(seconds(row.p95))</text>"#
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// `0.42s`, `3.1s`, `75s`.
    static func seconds(_ value: Double) -> String {
        if value < 1 { return String(format: "%.2fs", value) }
        if value < 10 { return String(format: "%.1fs", value) }
        return "\(Int(value.rounded()))s"
    }

    private static func open(height: Double, label: String) -> String {
        #"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="\#(HTMLText.number(width))" height="\#(HTMLText.number(height))" viewBox="0 0 \#(HTMLText.number(width)) \#(HTMLText.number(height))" role="img" aria-label="\#(HTMLText.escape(label))">"#
    }

    private static func axis(height: Double) -> String {
        #"<line class="axis" x1="0" y1="\#(HTMLText.number(plotHeight + 0.5))" x2="\#(HTMLText.number(width))" y2="\#(HTMLText.number(plotHeight + 0.5))"/>"#
            + #"<text class="tick" x="0" y="\#(HTMLText.number(height - 1))">−60m</text>"#
            + #"<text class="tick" x="\#(HTMLText.number(width))" y="\#(HTMLText.number(height - 1))" text-anchor="end">now</text>"#
    }

    private static func rect(class name: String, x: Double, y: Double, width: Double, height: Double) -> String {
        #"<rect class="\#(name)" x="\#(HTMLText.number(x))" y="\#(HTMLText.number(y))" width="\#(HTMLText.number(width))" height="\#(HTMLText.number(height))"/>"#
    }
}
