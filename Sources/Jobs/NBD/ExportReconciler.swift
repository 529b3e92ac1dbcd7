import Foundation
import Logging
import PostgresNIO

/// Brings the NBD backend back in line with `vm_export_mappings` at start-up (and on
/// `volumed reconcile` / `POST /admin/force-sync`): the rows are the truth, entries follow.
///
/// - active rows holding a kernel name (`/dev/vdb`) instead of the stable by-id path are
///   rewritten to the by-id path, as the original daemon's by-id migration did: kernel
///   names change across reboots and re-attachments, the by-id link does not;
/// - active rows whose entry is missing, or points elsewhere, are published again;
/// - entries without an active row are removed, so nothing serves a disk no row accounts for.
///
/// With `applianceVMId` set, only rows whose volume is attached to that appliance are this
/// host's; the others belong to other appliances (or to detached volumes) and are left to them.
/// One failing export never stops the others: failures are reported, not thrown.
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
        let device: VolumeDeviceMapping?
    }

    public func reconcile() async throws -> ExportReconcileReport {
        var report = ExportReconcileReport()
        let rows = try await database.decodedRows(ExportMappingSQL.activeWithDeviceMappings(), logger: logger) { row in
            let cells = row.makeRandomAccess()
            let vmId = try cells[10].decode(String?.self)
            let mode = try cells[11].decode(String?.self)
            let byId = try cells[12].decode(String?.self)
            return ActiveRow(
                mapping: try ExportMapping(row: row),
                device: vmId.map { VolumeDeviceMapping(vmId: $0, operationMode: mode ?? "", byIdPath: byId) })
        }
        var ours: [ExportMapping] = []
        for row in rows {
            if isOurs(row) {
                ours.append(try await withByIdPath(row, report: &report))
            } else if row.device == nil {
                report.note("skipped \(row.mapping.exportName): volume \(row.mapping.volumeId) has no device mapping (detached?); unexport it")
            }
        }

        let entries = try await backend.listExports()
        let wanted = Dictionary(ours.map { ($0.exportName, $0) }, uniquingKeysWith: { first, _ in first })
        for entry in entries where wanted[entry.name] == nil {
            do {
                try await backend.remove(exportName: entry.name)
                report.removed.append(entry.name)
                report.note("removed \(entry.name) (→ \(entry.targetPath)): no active export mapping")
            } catch {
                report.fail("could not remove stray entry \(entry.name): \(error)")
            }
        }
        let present = Dictionary(entries.map { ($0.name, $0.targetPath) }, uniquingKeysWith: { first, _ in first })
        for mapping in ours where present[mapping.exportName] != mapping.devicePath {
            do {
                try await backend.publish(exportName: mapping.exportName, devicePath: mapping.devicePath)
                report.recreated.append(mapping.exportName)
                let before = present[mapping.exportName].map { "was → \($0)" } ?? "was missing"
                report.note("recreated \(mapping.exportName) → \(mapping.devicePath) (\(before))")
            } catch {
                report.fail("could not recreate \(mapping.exportName) → \(mapping.devicePath): \(error)")
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
                report.fail("could not derive a by-id path for \(mapping.exportName) (volume \(mapping.volumeId)): \(error)")
                return mapping
            }
        }
        try await database.query(ExportMappingSQL.rewriteDevicePath(id: mapping.id, devicePath: byIdPath), logger: logger)
        report.rewritten.append(mapping.exportName)
        report.note("rewrote \(mapping.exportName) device_path \(mapping.devicePath) → \(byIdPath)")
        return mapping.with(devicePath: byIdPath)
    }

    /// Kernel names (`/dev/vdb`, `/dev/sdc`) are not; anything in the by-id directory or
    /// under some `/by-id/` directory is.
    private func isByIdPath(_ path: String) -> Bool {
        path.hasPrefix(resolver.directory + "/") || path.contains("/by-id/")
    }
}

/// What a reconciliation did, for logs, `volumed reconcile` and `POST /admin/force-sync`.
public struct ExportReconcileReport: Sendable, CustomStringConvertible, Encodable {
    /// Entries without an active row, removed.
    public var removed: [String] = []
    /// Active rows whose entry was missing or pointed elsewhere, published again.
    public var recreated: [String] = []
    /// Active rows whose kernel-name device path was rewritten to the by-id path.
    public var rewritten: [String] = []
    /// What could not be done; each line names the export and the cause.
    public var failures: [String] = []
    /// Every action and failure as one human-readable line, in order.
    public var lines: [String] = []

    public init() {}

    mutating func note(_ line: String) { lines.append(line) }

    mutating func fail(_ line: String) {
        failures.append(line)
        lines.append("FAILED: " + line)
    }

    public var description: String {
        "exports: \(removed.count) removed, \(recreated.count) recreated, \(rewritten.count) rewritten to by-id, \(failures.count) failed"
    }
}

extension ExportMapping {
    func with(devicePath: String) -> ExportMapping {
        var copy = self
        copy.devicePath = devicePath
        return copy
    }
}
