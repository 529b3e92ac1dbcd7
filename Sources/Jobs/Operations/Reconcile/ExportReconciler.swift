import NBD
import Devices
import Foundation
import Logging
import PostgresNIO
import Schema

/// Brings the NBD backend back in line with `vm_export_mappings` at start-up (and on
/// `volumed reconcile` / `POST /admin/force-sync`): the rows are the truth, entries follow.
///
/// - active rows holding a kernel name (`/dev/vdb`) instead of the stable by-id path are
///   rewritten to the by-id path, as the original daemon's by-id migration did: kernel
///   names change across reboots and re-attachments, the by-id link does not;
/// - active rows whose entry is missing, or points elsewhere, are published again;
/// - entries without an active row are removed, so nothing serves a disk no row accounts for;
/// - an entry whose by-id link no longer leads to the disk the attach verified (not a block
///   device, or not the recorded size: someone re-pointed it) is withdrawn, and not published
///   again until the link leads to that disk again. nbdkit follows the link on every client
///   connect, so an export is only as trustworthy as its link is now.
///
/// With `applianceVMId` set, only rows whose volume is attached to that appliance are this
/// host's; the others belong to other appliances (or to detached volumes) and are left to them.
/// One failing export never stops the others: failures are reported, not thrown.
///
/// Never races a worker: volumes with an executing operation (and any in `skipping`) are left
/// alone, and the entries are listed before the rows and the busy volumes are read. An entry
/// in the listing was published by an operation that had started by then, so when the rows
/// are read that operation is either still executing (left alone) or finished (its row is
/// active, or it never will be and the entry is a real stray).
public struct ExportReconciler: Sendable {
    public let backend: any NBDExportBackend
    public let resolver: ByIdResolver
    public let applianceVMId: String?
    public let database: PostgresClient
    public let logger: Logger

    public init(backend: any NBDExportBackend, resolver: ByIdResolver, applianceVMId: String?, database: PostgresClient, logger: Logger) {
        self.backend = backend
        self.resolver = resolver
        self.applianceVMId = applianceVMId
        self.database = database
        self.logger = logger
    }

    private struct ActiveRow {
        let mapping: ExportMapping
        let device: DeviceMapping?
    }

    /// - Parameters:
    ///   - dryRun: decide and report, change nothing (no entry, no row).
    ///   - skipping: volumes to leave alone besides those with an executing operation
    ///     (reconcile passes those with pending operations too).
    public func reconcile(dryRun: Bool = false, skipping: Set<String> = []) async throws -> ExportReconcileReport {
        var report = ExportReconcileReport(dryRun: dryRun)
        let entries = try await backend.listExports()
        let busy = try await executingVolumes().union(skipping)
        let rows = try await database.decodedRows(ExportMappingsTable.activeWithDeviceMappings(), logger: logger) { row in
            let mapped = try row.makeRandomAccess()[ExportMapping.width].decode(String?.self) != nil
            return ActiveRow(mapping: try ExportMapping(row: row),
                             device: mapped ? try DeviceMapping(row: row, from: ExportMapping.width) : nil)
        }
        var ours: [ExportMapping] = []
        var expectedSizes: [String: Int64] = [:]
        var leftAlone: Set<String> = []
        for row in rows {
            if busy.contains(row.mapping.volumeId) {
                leftAlone.insert(row.mapping.exportName)
                report.skipBusy(row.mapping.volumeId, exportName: row.mapping.exportName)
            } else if isOurs(row) {
                ours.append(try await withByIdPath(row, report: &report))
                if let size = row.device?.sizeBytes { expectedSizes[row.mapping.exportName] = size }
            } else if row.device == nil {
                report.note("skipped \(row.mapping.exportName): volume \(row.mapping.volumeId) has no device mapping (detached?); unexport it")
            }
        }

        let wanted = Dictionary(ours.map { ($0.exportName, $0) }, uniquingKeysWith: { first, _ in first })
        for entry in entries where wanted[entry.name] == nil && !leftAlone.contains(entry.name) {
            let volumeId = ExportName.volumeId(inExportName: entry.name)
            if let volumeId, busy.contains(volumeId) {
                report.skipBusy(volumeId, exportName: entry.name)
                continue
            }
            let reason = "\(entry.name) (→ \(entry.targetPath)): no active export mapping"
            await report.record(.removed, entry.name, volumeId: volumeId, done: "removed \(reason)", planned: "would remove \(reason)",
                                failed: "could not remove stray entry \(entry.name)") {
                try await backend.remove(exportName: entry.name)
            }
        }
        let present = Dictionary(entries.map { ($0.name, $0.targetPath) }, uniquingKeysWith: { first, _ in first })
        var untrusted: Set<String> = []
        for mapping in ours {
            // A link that leads nowhere serves nothing (nbdkit cannot open it); the recreate
            // below reports it. One that leads somewhere must lead to the verified disk.
            guard case .resolved = try? LinkInspection.state(ofLink: mapping.devicePath) else { continue }
            do {
                _ = try resolver.verifiedDevice(byIdPath: mapping.devicePath, volumeId: mapping.volumeId,
                                                expectedSize: expectedSizes[mapping.exportName])
            } catch {
                untrusted.insert(mapping.exportName)
                if present[mapping.exportName] != nil {
                    let what = "\(mapping.exportName): \(error.message)"
                    await report.record(.withdrawn, mapping.exportName, volumeId: mapping.volumeId, done: "withdrew \(what)",
                                        planned: "would withdraw \(what)", failed: "could not withdraw \(mapping.exportName)") {
                        try await backend.remove(exportName: mapping.exportName)
                    }
                }
                report.refuse("\(mapping.exportName) is not served until its by-id link leads to the disk the attach verified again: "
                                + error.message)
            }
        }
        for mapping in ours where present[mapping.exportName] != mapping.devicePath && !untrusted.contains(mapping.exportName) {
            let before = present[mapping.exportName].map { "was → \($0)" } ?? "was missing"
            let what = "\(mapping.exportName) → \(mapping.devicePath)"
            await report.record(.recreated, mapping.exportName, volumeId: mapping.volumeId, done: "recreated \(what) (\(before))",
                                planned: "would recreate \(what) (\(before))", failed: "could not recreate \(what)") {
                try await backend.publish(exportName: mapping.exportName, devicePath: mapping.devicePath)
            }
        }
        for line in report.lines { logger.notice("export reconcile: \(line)") }
        return report
    }

    private func isOurs(_ row: ActiveRow) -> Bool {
        guard let applianceVMId else { return true }
        guard let device = row.device else { return false }
        return device.operationMode == "appliance" && device.vmId == applianceVMId
    }

    private func executingVolumes() async throws -> Set<String> {
        Set(try await database.decodedRows(QueueSQL.executingVolumes(), logger: logger) { try $0.decode(String.self) })
    }

    /// The row itself when it already holds a by-id path; otherwise the row rewritten to the
    /// volume's by-id path (the attach's record first, else the link udev creates for it).
    private func withByIdPath(_ row: ActiveRow, report: inout ExportReconcileReport) async throws -> ExportMapping {
        let mapping = row.mapping
        guard !isByIdPath(mapping.devicePath) else { return mapping }
        let byIdPath: String
        if let recorded = row.device?.byIdPath, isByIdPath(recorded) {
            byIdPath = recorded
        } else {
            do {
                byIdPath = try resolver.currentDevice(volumeId: mapping.volumeId)?.byIdPath
                    ?? resolver.candidateLinkPaths(volumeId: mapping.volumeId)[0]
            } catch {
                report.fail(.rewritten, mapping.exportName, volumeId: mapping.volumeId,
                            "could not derive a by-id path for \(mapping.exportName) (volume \(mapping.volumeId)): \(error)")
                return mapping
            }
        }
        let what = "\(mapping.exportName) device_path \(mapping.devicePath) → \(byIdPath)"
        await report.record(.rewritten, mapping.exportName, volumeId: mapping.volumeId, done: "rewrote \(what)",
                            planned: "would rewrite \(what)", failed: "could not rewrite \(what)") {
            _ = try await database.rows(ExportMappingsTable.rewriteDevicePath(id: mapping.id, devicePath: byIdPath), logger: logger)
        }
        var rewritten = mapping
        rewritten.devicePath = byIdPath
        return rewritten
    }

    /// Kernel names (`/dev/vdb`, `/dev/sdc`) are not; anything in the by-id directory or
    /// under some `/by-id/` directory is.
    private func isByIdPath(_ path: String) -> Bool {
        path.hasPrefix(resolver.directory + "/") || path.contains("/by-id/")
    }
}

/// One export the reconciler changed (or, in a dry run, would change), or failed to.
public struct ExportChange: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// An entry without an active row, withdrawn.
        case removed
        /// An active row whose entry was missing or pointed elsewhere, published again.
        case recreated
        /// An active row's kernel-name device path rewritten to the by-id path.
        case rewritten
        /// An active row's entry whose by-id link no longer leads to the verified disk, withdrawn.
        case withdrawn
    }

    public let kind: Kind
    public let exportName: String
    /// The volume the export belongs to; nil for an entry whose name names no volume.
    public let volumeId: String?
    public let message: String
    /// Why it could not be done; nil when it was done (or, in a dry run, planned).
    public let error: String?
}

/// What a reconciliation did, for logs, `volumed reconcile` and `POST /admin/force-sync`.
public struct ExportReconcileReport: Sendable, CustomStringConvertible {
    /// Nothing was changed; the names below are what a real run would change.
    public var dryRun: Bool
    /// Entries without an active row, removed.
    public var removed: [String] = []
    /// Active rows whose entry was missing or pointed elsewhere, published again.
    public var recreated: [String] = []
    /// Active rows whose kernel-name device path was rewritten to the by-id path.
    public var rewritten: [String] = []
    /// Active rows whose entry was withdrawn: their link no longer leads to the verified disk.
    public var withdrawn: [String] = []
    /// What could not be done; each line names the export and the cause.
    public var failures: [String] = []
    /// Every change and failure, with its volume.
    public var changes: [ExportChange] = []
    /// Volumes left alone because an operation was running on them (or the caller said so).
    public var busy: [String] = []
    /// Every action and failure as one human-readable line, in order.
    public var lines: [String] = []

    public init(dryRun: Bool = false) {
        self.dryRun = dryRun
    }

    mutating func note(_ line: String) { lines.append(line) }

    mutating func skipBusy(_ volumeId: String, exportName: String) {
        if !busy.contains(volumeId) { busy.append(volumeId) }
        note("left \(exportName) alone: volume \(volumeId) has an operation running")
    }

    /// Runs `change` unless this is a dry run, and records it as done, planned or failed.
    mutating func record(
        _ kind: ExportChange.Kind, _ exportName: String, volumeId: String?, done: String, planned: String, failed: String,
        _ change: () async throws -> Void
    ) async {
        if dryRun {
            changes.append(ExportChange(kind: kind, exportName: exportName, volumeId: volumeId, message: planned, error: nil))
            append(kind, exportName)
            note(planned)
            return
        }
        do {
            try await change()
            changes.append(ExportChange(kind: kind, exportName: exportName, volumeId: volumeId, message: done, error: nil))
            append(kind, exportName)
            note(done)
        } catch {
            fail(kind, exportName, volumeId: volumeId, "\(failed): \(error)")
        }
    }

    /// Something the reconciler will not do (serve an export through a link it cannot trust):
    /// reported as a failure, with no change of its own (the planner reports the link too).
    mutating func refuse(_ line: String) {
        failures.append(line)
        lines.append("FAILED: " + line)
    }

    mutating func fail(_ kind: ExportChange.Kind, _ exportName: String, volumeId: String?, _ line: String) {
        changes.append(ExportChange(kind: kind, exportName: exportName, volumeId: volumeId, message: line, error: line))
        failures.append(line)
        lines.append("FAILED: " + line)
    }

    private mutating func append(_ kind: ExportChange.Kind, _ exportName: String) {
        switch kind {
        case .removed: removed.append(exportName)
        case .recreated: recreated.append(exportName)
        case .rewritten: rewritten.append(exportName)
        case .withdrawn: withdrawn.append(exportName)
        }
    }

    public var description: String {
        (dryRun ? "exports (dry run, nothing changed): " : "exports: ")
            + "\(removed.count) removed, \(recreated.count) recreated, \(rewritten.count) rewritten to by-id, "
            + "\(withdrawn.count) withdrawn, \(failures.count) failed"
    }
}
