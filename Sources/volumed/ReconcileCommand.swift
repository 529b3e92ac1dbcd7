import ArgumentParser
import Foundation
import Operations
import Logging
import PostgresNIO
import Schema

struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Compare the tables with CloudStack, the by-id links and the NBD exports; repair what is safe, report the rest.",
        discussion: """
            Repairs: a mapping of a volume CloudStack shows detached is removed (with its exports); a data disk attached
            to this appliance outside volumed is adopted; a mapping whose by-id link now resolves to another device
            follows it; export entries are brought in line with vm_export_mappings. Everything else is reported.
            Volumes with a pending or executing operation are left alone. Configured like `volumed worker`.

            Exit status: 0 nothing needs attention (volumes skipped as busy do not count); 1 reconcile could not run
            (database or CloudStack unreachable, another reconcile running; 64 for bad flags or settings); 2 unresolved
            findings remain for an operator; 3 (--dry-run only) no findings, but repairs are planned.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var options: WorkerOptions
    @Flag(help: "Print the plan and change nothing.") var dryRun = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        let logger = quietLogger("volumed.reconcile")
        let url = try database.url()
        let configuration = try options.workerConfiguration()
        let runtime = try await WorkerHandlers.make(try HandlerFactory.settings(options: options, configuration: configuration), logger: logger)
        let dryRun = self.dryRun
        let report: ReconcileReport
        do {
            report = try await PostgresClient.withRunning(url, maximumConnections: 4, logger: logger) { client in
                try await Migrator(logger: logger).checkUpToDate(client)
                return try await runtime.reconciler(database: client, logger: logger).reconcile(dryRun: dryRun)
            }
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
        print(json ? try report.json() : Self.text(report))
        if !report.needsAttention.isEmpty { throw ExitCode(2) }
        if report.dryRun && !report.planned.isEmpty { throw ExitCode(3) }
    }

    static func text(_ report: ReconcileReport) -> String {
        var lines = ["reconcile: \(report.summary)"]
        func section(_ title: String, _ rows: [(kind: String, volumeId: String?, message: String)]) {
            guard !rows.isEmpty else { return }
            lines.append(title)
            lines += rows.map { "  \($0.kind) \($0.volumeId ?? "-"): \($0.message)" }
        }
        section(report.dryRun ? "would repair:" : "planned:", report.planned.map { ($0.kind.rawValue, $0.volumeId, $0.message) })
        if !report.dryRun {
            section("applied:", report.applied.map { ($0.kind.rawValue, $0.volumeId, $0.message) })
        }
        section("unresolved:", report.unresolved.map { ($0.kind.rawValue, $0.volumeId, $0.message) })
        return lines.joined(separator: "\n")
    }
}
