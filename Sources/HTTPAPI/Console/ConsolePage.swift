import Primitives
import Foundation
import Operations
import Schema

/// The console's sections as HTML fragments, rendered from what `ConsoleReads` read. The page
/// shell (`ConsoleShell`) fetches them and swaps them in; every value from a row is escaped.
enum ConsolePage {
    /// Everything the overview shows, read at one moment.
    struct Overview: Sendable {
        var now: Date
        var counts: [ConsoleReads.Count]
        var oldestPending: (id: UUID, type: String, ageSeconds: Double)?
        var throughput: [String: [SVGChart.Bucket]]
        var unfinished: [OperationRecord]
        var recent: [OperationRecord]
        var failures: [OperationRecord]
        var stuck: [ConsoleReads.Stuck]
        var appliances: [(vmId: String, lastSeenSeconds: Double)]
        var placements: [ConsoleReads.Placement]
        /// The live state of an appliance mapping's by-id link, on this host only.
        var linkStates: [String: LinkState]
        var localAppliance: String?
    }

    /// What the by-id link of an appliance mapping resolves to now.
    enum LinkState: Sendable, Equatable {
        case resolves(to: String)
        case missing
        case unknown(String)
    }

    static let statuses = ["pending", "executing", "completed", "failed", "cancelled"]

    static func overview(_ data: Overview) -> String {
        queue(data) + inFlight(data) + problems(data) + appliances(data)
            + #"<p class="stamp" id="rendered-at" data-at="\#(iso(data.now))">as of \#(clock(data.now))</p>"#
    }

    // MARK: Queue

    static func queue(_ data: Overview) -> String {
        var totals: [String: Int64] = [:]
        var byType: [String: [String: Int64]] = [:]
        var durations: [SVGChart.Durations] = []
        for count in data.counts {
            totals[count.status, default: 0] += count.operations
            byType[count.type, default: [:]][count.status, default: 0] += count.operations
            if count.status == "completed", let p50 = count.p50, let p95 = count.p95 {
                durations.append(SVGChart.Durations(type: count.type, operations: Int(count.operations), p50: p50, p95: p95))
            }
        }
        var html = #"<section id="queue"><h2>Queue</h2><div class="tiles">"#
        for status in statuses {
            let window = ["completed", "failed", "cancelled"].contains(status) ? "<small>last hour</small>" : ""
            html += #"<div class="tile \#(status)" id="total-\#(status)"><b>\#(totals[status] ?? 0)</b><span>\#(status)</span>\#(window)</div>"#
        }
        if let oldest = data.oldestPending {
            html += #"<div class="tile age" id="oldest-pending"><b>\#(ageText(oldest.ageSeconds))</b><span>oldest pending</span><small><a href='#op=\#(id(oldest.id))'>\#(HTMLText.escape(oldest.type))</a></small></div>"#
        } else {
            html += #"<div class="tile age" id="oldest-pending"><b>—</b><span>oldest pending</span><small>none pending</small></div>"#
        }
        html += "</div>"

        html += #"<table id="counts"><thead><tr><th>type</th>"#
        for status in statuses { html += "<th>\(status)</th>" }
        html += "</tr></thead><tbody>"
        for type in byType.keys.sorted() {
            html += #"<tr data-type="\#(HTMLText.escape(type))"><td>\#(HTMLText.escape(type))</td>"#
            for status in statuses {
                let value = byType[type]?[status] ?? 0
                html += #"<td class="num\#(value == 0 ? " zero" : "")" data-status="\#(status)">\#(value)</td>"#
            }
            html += "</tr>"
        }
        if byType.isEmpty { html += #"<tr><td colspan="6" class="empty">no operations pending, running or finished in the last hour</td></tr>"# }
        html += "</tbody></table>"

        html += #"<div class="charts">"#
        for type in data.throughput.keys.sorted() {
            html += #"<figure><figcaption>\#(HTMLText.escape(type)) · finished per 5 min</figcaption>\#(SVGChart.throughput(data.throughput[type] ?? [], bucketMinutes: 5, label: type))</figure>"#
        }
        if data.throughput.isEmpty {
            html += #"<figure><figcaption>all types · finished per 5 min</figcaption>\#(SVGChart.throughput([], bucketMinutes: 5, label: "all types"))</figure>"#
        }
        html += #"<figure><figcaption>duration p50 / p95 · last hour</figcaption>\#(SVGChart.durations(durations.sorted { $0.type < $1.type }))</figure>"#
        html += "</div>"

        html += #"<h3>Recently finished</h3><table id="recent"><thead><tr><th>finished</th><th>type</th><th>status</th><th>volume</th><th>took</th><th></th></tr></thead><tbody>"#
        for record in data.recent {
            let took = record.startedAt.flatMap { start in record.completedAt.map { SVGChart.seconds($0.timeIntervalSince(start)) } } ?? "—"
            html += #"<tr data-op="\#(id(record.id))" data-status="\#(record.status.rawValue)"><td title="\#(iso(record.completedAt))">\#(ago(record.completedAt, data.now))</td><td>\#(HTMLText.escape(record.type))</td><td>\#(badge(record.status.rawValue))</td><td class="id">\#(short(record.volumeId))</td><td>\#(took)</td><td><a href='#op=\#(id(record.id))'>history</a></td></tr>"#
        }
        if data.recent.isEmpty { html += #"<tr><td colspan="6" class="empty">nothing finished yet</td></tr>"# }
        return html + "</tbody></table></section>"
    }

    // MARK: In flight

    static func inFlight(_ data: Overview) -> String {
        let executing = data.unfinished.filter { $0.status == .executing }
        let pending = data.unfinished.filter { $0.status == .pending }
        var html = #"<section id="inflight"><h2>In flight</h2><table id="executing"><thead><tr><th>type</th><th>volume</th><th>worker</th><th>attempt</th><th>step</th><th>running</th><th>lease</th><th></th></tr></thead><tbody>"#
        for record in executing {
            let running = record.startedAt.map { ageText(data.now.timeIntervalSince($0)) } ?? "—"
            let lease = record.leaseExpiresAt.map { expiry -> String in
                let left = expiry.timeIntervalSince(data.now)
                return left >= 0 ? "expires in \(ageText(left))" : #"<span class="bad">expired \#(ageText(-left)) ago</span>"#
            } ?? "—"
            html += #"<tr data-op="\#(id(record.id))" data-status="executing"><td>\#(HTMLText.escape(record.type))</td><td class="id">\#(short(record.volumeId))</td><td>\#(HTMLText.escape(record.claimedBy ?? "—"))</td><td>\#(record.attempts)/\#(record.maxAttempts)</td><td class="step">\#(HTMLText.escape(OperationStep.describe(record, now: data.now)))</td><td>\#(running)</td><td>\#(lease)</td><td>\#(cancelButton(record))</td></tr>"#
        }
        if executing.isEmpty { html += #"<tr><td colspan="8" class="empty">nothing executing</td></tr>"# }
        html += #"</tbody></table><h3>Pending</h3><table id="pending"><thead><tr><th>type</th><th>volume</th><th>vm</th><th>waiting</th><th>step</th><th></th></tr></thead><tbody>"#
        for record in pending {
            html += #"<tr data-op="\#(id(record.id))" data-status="pending"><td>\#(HTMLText.escape(record.type))</td><td class="id">\#(short(record.volumeId))</td><td class="id">\#(short(record.vmId))</td><td>\#(ageText(data.now.timeIntervalSince(record.createdAt)))</td><td class="step">\#(HTMLText.escape(OperationStep.describe(record, now: data.now)))</td><td>\#(cancelButton(record))</td></tr>"#
        }
        if pending.isEmpty { html += #"<tr><td colspan="6" class="empty">nothing pending</td></tr>"# }
        return html + "</tbody></table></section>"
    }

    // MARK: Failed and stuck

    static func problems(_ data: Overview) -> String {
        var html = #"<section id="problems"><h2>Failed and stuck</h2><h3>Stuck <small>(volume_operations_stuck)</small></h3><table id="stuck"><thead><tr><th>type</th><th>status</th><th>volume</th><th>why</th><th>overdue</th><th></th></tr></thead><tbody>"#
        for stuck in data.stuck {
            html += #"<tr data-op="\#(id(stuck.id))"><td>\#(HTMLText.escape(stuck.type))</td><td>\#(badge(stuck.status))</td><td class="id">\#(short(stuck.volumeId))</td><td>\#(HTMLText.escape(stuck.reason))</td><td>\#(ageText(stuck.overdueSeconds))</td><td><a href='#op=\#(id(stuck.id))'>history</a></td></tr>"#
        }
        if data.stuck.isEmpty { html += #"<tr><td colspan="6" class="empty">nothing stuck</td></tr>"# }
        html += #"</tbody></table><h3>Recent failures</h3><table id="failures"><thead><tr><th>failed</th><th>type</th><th>volume</th><th>error</th><th></th></tr></thead><tbody>"#
        for record in data.failures {
            html += #"<tr data-op="\#(id(record.id))"><td title="\#(iso(record.completedAt))">\#(ago(record.completedAt, data.now))</td><td>\#(HTMLText.escape(record.type))</td><td class="id">\#(short(record.volumeId))</td><td><code class="code">\#(HTMLText.escape(record.errorCode ?? "—"))</code> \#(HTMLText.escape(record.error ?? ""))<div class="advice">\#(HTMLText.escape(ConsoleAdvice.advice(for: record.errorCode)))</div></td><td><a href='#op=\#(id(record.id))'>history</a></td></tr>"#
        }
        if data.failures.isEmpty { html += #"<tr><td colspan="5" class="empty">no failures</td></tr>"# }
        return html + "</tbody></table></section>"
    }

    // MARK: Per appliance

    static func appliances(_ data: Overview) -> String {
        var html = #"<section id="appliances"><h2>Per appliance</h2>"#
        let applianceMappings = Dictionary(grouping: data.placements.filter { $0.mode == "appliance" }, by: { $0.vmId.lowercased() })
        var applianceIds = data.appliances.map { $0.vmId.lowercased() }
        for vmId in applianceMappings.keys.sorted() where !applianceIds.contains(vmId) { applianceIds.append(vmId) }
        let seen = Dictionary(data.appliances.map { ($0.vmId.lowercased(), $0.lastSeenSeconds) }, uniquingKeysWith: { first, _ in first })
        for vmId in applianceIds {
            let local = data.localAppliance?.lowercased() == vmId
            let where_ = local ? "this host" : "another host: link states are checked there"
            let lastSeen = seen[vmId].map { "worker seen \(ageText($0)) ago" } ?? "no worker seen"
            html += #"<div class="appliance" data-vm="\#(HTMLText.escape(vmId))"><h3>appliance <span class="id">\#(HTMLText.escape(vmId))</span> <small>\#(where_) · \#(lastSeen)</small></h3>"#
            html += #"<table class="volumes"><thead><tr><th>volume</th><th>by-id link</th><th>device</th><th>link</th><th>NBD export</th><th>port</th></tr></thead><tbody>"#
            let mappings = applianceMappings[vmId] ?? []
            for mapping in mappings {
                html += #"<tr data-volume="\#(HTMLText.escape(mapping.volumeId))"><td class="id" title="\#(HTMLText.escape(mapping.name ?? ""))">\#(HTMLText.escape(mapping.volumeId))</td><td class="path">\#(HTMLText.escape(mapping.byIdPath ?? "—"))</td><td class="path">\#(HTMLText.escape(mapping.devicePath ?? "—"))</td><td>\#(local ? linkCell(data.linkStates[mapping.volumeId], recorded: mapping.devicePath) : "—")</td><td class="export">\#(HTMLText.escape(mapping.exportName ?? "—"))</td><td>\#(mapping.nbdPort.map(String.init) ?? "—")</td></tr>"#
            }
            if mappings.isEmpty { html += #"<tr><td colspan="6" class="empty">no volumes attached</td></tr>"# }
            html += "</tbody></table></div>"
        }
        if applianceIds.isEmpty { html += #"<p class="empty">no appliance worker has started yet</p>"# }

        let remote = Dictionary(grouping: data.placements.filter { $0.mode == "remote" }, by: { $0.vmId })
        html += #"<h3>Remote (test-failover) VMs</h3><table id="remote"><thead><tr><th>VM</th><th>volume</th><th>device id</th></tr></thead><tbody>"#
        for vmId in remote.keys.sorted() {
            let volumes = remote[vmId] ?? []
            for (index, mapping) in volumes.enumerated() {
                let vmCell = index == 0 ? #"<td class="id" rowspan="\#(volumes.count)">\#(HTMLText.escape(vmId))</td>"# : ""
                html += #"<tr data-volume="\#(HTMLText.escape(mapping.volumeId))">\#(vmCell)<td class="id">\#(HTMLText.escape(mapping.volumeId))</td><td>\#(mapping.cloudStackDeviceId.map(String.init) ?? "—")</td></tr>"#
            }
        }
        if remote.isEmpty { html += #"<tr><td colspan="3" class="empty">no volumes on other VMs</td></tr>"# }
        return html + "</tbody></table></section>"
    }

    static func linkCell(_ state: LinkState?, recorded: String?) -> String {
        switch state {
        case .resolves(let device)? where device == recorded:
            return #"<span class="ok link-state">resolves</span>"#
        case .resolves(let device)?:
            return #"<span class="warn link-state">now → \#(HTMLText.escape(device)); reconcile updates the mapping</span>"#
        case .missing?:
            return #"<span class="bad link-state">missing</span>"#
        case .unknown(let why)?:
            return #"<span class="warn link-state">\#(HTMLText.escape(why))</span>"#
        case nil:
            return "—"
        }
    }

    // MARK: One operation

    static func operation(_ record: OperationRecord, events: [ConsoleReads.Event], now: Date) -> String {
        var html = #"<section id="operation" data-op="\#(id(record.id))" data-status="\#(record.status.rawValue)"><p><a href='#'>← back to the overview</a></p>"#
        html += #"<h2>\#(HTMLText.escape(record.type)) <span class="id">\#(id(record.id))</span> \#(badge(record.status.rawValue)) \#(cancelButton(record))</h2><table class="facts"><tbody>"#
        func fact(_ name: String, _ value: String?) {
            html += "<tr><th>\(name)</th><td>\(HTMLText.escape(value ?? "—"))</td></tr>"
        }
        fact("step", OperationStep.describe(record, now: now))
        fact("volume", record.volumeId)
        fact("vm", record.vmId)
        fact("attempts", "\(record.attempts) of \(record.maxAttempts)")
        fact("worker", record.claimedBy)
        fact("idempotency key", record.idempotencyKey)
        fact("created", iso(record.createdAt))
        fact("started", record.startedAt.map { iso($0) })
        fact("finished", record.completedAt.map { iso($0) })
        if record.status == .failed || record.errorCode != nil {
            fact("error code", record.errorCode)
            fact("error", record.error)
            fact("advice", ConsoleAdvice.advice(for: record.errorCode))
        }
        html += "<tr><th>request</th><td><pre>\(HTMLText.escape(record.request))</pre></td></tr>"
        html += "<tr><th>response</th><td><pre>\(HTMLText.escape(record.response ?? "—"))</pre></td></tr>"
        html += "<tr><th>checkpoint</th><td><pre>\(HTMLText.escape(record.checkpoint ?? "—"))</pre></td></tr>"
        html += #"</tbody></table><h3>Events</h3><table id="events"><thead><tr><th>at</th><th>from</th><th>to</th><th>worker</th><th>detail</th></tr></thead><tbody>"#
        for event in events {
            html += "<tr><td>\(iso(event.at))</td><td>\(HTMLText.escape(event.from ?? "—"))</td><td>\(badge(event.to))</td><td>\(HTMLText.escape(event.worker ?? "—"))</td><td>\(HTMLText.escape(event.detail ?? ""))</td></tr>"
        }
        return html + "</tbody></table></section>"
    }

    // MARK: Pieces

    static func cancelButton(_ record: OperationRecord) -> String {
        guard !record.status.isTerminal else { return "" }
        if record.cancelRequestedAt != nil { return #"<span class="warn">cancel requested</span>"# }
        return #"<button class="cancel" data-cancel="\#(id(record.id))" data-what="\#(HTMLText.escape(record.type + (record.volumeId.map { " of volume " + $0 } ?? "")))">Cancel</button>"#
    }

    static func badge(_ status: String) -> String {
        #"<span class="badge \#(HTMLText.escape(status))">\#(HTMLText.escape(status))</span>"#
    }

    static func id(_ uuid: UUID) -> String { uuid.uuidString.lowercased() }

    /// Ids are long: the first block, the whole one in the tooltip.
    static func short(_ text: String?) -> String {
        guard let text else { return "—" }
        let head = text.split(separator: "-").first.map(String.init) ?? text
        return #"<span title="\#(HTMLText.escape(text))">\#(HTMLText.escape(head))…</span>"#
    }

    static func ago(_ date: Date?, _ now: Date) -> String {
        guard let date else { return "—" }
        return "\(ageText(now.timeIntervalSince(date))) ago"
    }

    static func iso(_ date: Date?) -> String {
        date.map { $0.formatted(.iso8601) } ?? ""
    }

    static func clock(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle().time(includingFractionalSeconds: false)) + " UTC"
    }
}
