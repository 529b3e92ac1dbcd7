import NBD
import Foundation
import Logging
import PostgresNIO

/// `volumed reconcile`, the periodic pass and `POST /admin/force-sync`: compares
/// `device_mappings` and `volumes` with CloudStack (`listVolumes`) and the by-id directory,
/// and the NBD export entries with `vm_export_mappings` (through `ExportReconciler`).
/// Repairs what is safe (see `ReconcilePlanner` for the rules), reports the rest.
///
/// - One pass at a time across every process on the database (a transaction-scoped advisory
///   lock taken with a try, as the rescuer's); a second caller gets `ReconcileAlreadyRunning`.
/// - Never races a worker: volumes with a pending or executing operation are skipped and
///   reported `busy`, and each repair re-checks that inside its own transaction.
/// - `dryRun`: the same decisions, nothing changed (tables, export entries, CloudStack).
public struct Reconciler: Sendable {
    public let environment: OperationEnvironment
    public let database: PostgresClient
    public let exportBackend: any NBDExportBackend
    let logger: Logger

    /// Only one reconcile at a time across all workers and CLIs: this transaction-scoped
    /// lock, taken with a try (as the rescuer's), held for the length of one pass.
    static let lockKey: Int64 = 0x766F_6C75_6D65_6403

    public init(environment: OperationEnvironment, database: PostgresClient, exportBackend: any NBDExportBackend, logger: Logger? = nil) {
        self.environment = environment
        self.database = database
        self.exportBackend = exportBackend
        self.logger = logger ?? environment.logger
    }

    /// One pass. Throws `ReconcileAlreadyRunning` when another pass holds the lock, and the
    /// error when the tables or CloudStack cannot be read (a half-seen state repairs nothing).
    public func reconcile(dryRun: Bool) async throws -> ReconcileReport {
        let outcome = try await database.inTransaction(logger: logger) { connection -> Result<ReconcileReport, any Error>? in
            let locked = try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.lockKey))", logger: logger).collect().first?.decode(Bool.self) ?? false
            guard locked else { return nil }
            // The lock lives as long as this transaction; the pass itself uses other connections.
            do {
                return .success(try await pass(dryRun: dryRun))
            } catch {
                return .failure(error)
            }
        }
        guard let outcome else { throw ReconcileAlreadyRunning() }
        return try outcome.get()
    }

    private func pass(dryRun: Bool) async throws -> ReconcileReport {
        var report = ReconcileReport(dryRun: dryRun, startedAt: Date(), applianceVMId: environment.applianceVMId)
        let snapshot = try await takeSnapshot()
        report.volumesChecked = snapshot.volumeIds.count
        let (repairs, findings) = ReconcilePlanner(snapshot: snapshot, applianceVMId: environment.applianceVMId).plan()
        report.planned = repairs.map(\.action)
        report.unresolved = findings
        if !dryRun {
            for repair in repairs {
                switch await apply(repair, since: snapshot.since) {
                case .applied:
                    report.applied.append(repair.action)
                case .changed(let reason):
                    report.unresolved.append(ReconcileFinding(kind: .changedDuringReconcile, volumeId: repair.action.volumeId,
                                                              message: "\(repair.action.kind.rawValue) not applied: \(reason)"))
                case .failed(let reason):
                    report.unresolved.append(ReconcileFinding(kind: .repairFailed, volumeId: repair.action.volumeId,
                                                              message: "\(repair.action.kind.rawValue) failed: \(reason)"))
                }
            }
        }
        await reconcileExports(into: &report, skipping: snapshot.busy)
        report.finishedAt = Date()
        logger.info("reconcile", metadata: ["summary": "\(report.summary)"])
        for action in report.applied { logger.notice("reconcile: \(action.message)") }
        for finding in report.needsAttention { logger.warning("reconcile: \(finding.message)") }
        return report
    }

    /// The export entries, after the mapping repairs (a removed mapping's exports are gone,
    /// an adopted volume's are this appliance's now).
    private func reconcileExports(into report: inout ReconcileReport, skipping busy: Set<String>) async {
        let exports: ExportReconcileReport
        do {
            exports = try await ExportReconciler(
                backend: exportBackend, resolver: environment.resolver, applianceVMId: environment.applianceVMId,
                database: database, logger: logger
            ).reconcile(dryRun: report.dryRun, skipping: busy)
        } catch {
            report.unresolved.append(ReconcileFinding(
                kind: .checkFailed, volumeId: nil, message: "could not reconcile the NBD exports: \(error)"))
            return
        }
        let alreadyBusy = Set(report.unresolved.filter { $0.kind == .busy }.compactMap(\.volumeId))
        for volumeId in exports.busy where !alreadyBusy.contains(volumeId) {
            report.unresolved.append(ReconcileFinding(
                kind: .busy, volumeId: volumeId,
                message: "volume \(volumeId) has an operation running; its NBD exports were left alone until the next pass"))
        }
        for change in exports.changes {
            let action = ReconcileAction(kind: change.kind.actionKind, volumeId: change.volumeId, message: change.message)
            report.planned.append(action)
            if let error = change.error {
                report.unresolved.append(ReconcileFinding(kind: .repairFailed, volumeId: change.volumeId, message: error))
            } else if !report.dryRun {
                report.applied.append(action)
            }
        }
    }
}

extension ExportChange.Kind {
    var actionKind: ReconcileActionKind {
        switch self {
        case .removed: .removeExport
        case .recreated: .recreateExport
        case .rewritten: .rewriteExportPath
        case .withdrawn: .withdrawExport
        }
    }
}
