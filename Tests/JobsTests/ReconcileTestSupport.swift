import NBD
import CloudStackSimulator
import DevServices
import Foundation
import Operations
import PostgresNIO
import TestSupport
import Testing

/// One reconcile test's world: a `HandlerHarness` (fresh database, in-process simulator
/// hot-plugging into a temporary by-id directory), an export directory for the nbdkit
/// backend (served by a real nbdkit when `serveExports`), and reconcilers over both.
struct ReconcileWorld: Sendable {
    let harness: HandlerHarness
    let exportDirectory: String
    let backend: NbdkitDirectoryBackend
    let nbdkit: NbdkitServer?

    var db: TestDatabase { harness.db }
    var appliance: String { harness.appliance }

    static func run(
        faults: SimulatorFaults = SimulatorFaults(),
        serveExports: Bool = false,
        defaultPageSize: Int = 500,
        _ body: @escaping @Sendable (ReconcileWorld) async throws -> Void
    ) async throws {
        try await HandlerHarness.with(faults: faults, defaultPageSize: defaultPageSize) { harness in
            let exports = harness.byIDDirectory.deletingLastPathComponent().appendingPathComponent("exports").path
            try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
            let nbdkit = serveExports ? try await NbdkitServer.start(exportDirectory: exports) : nil
            let world = ReconcileWorld(
                harness: harness, exportDirectory: exports,
                backend: NbdkitDirectoryBackend(exportDirectory: exports, port: nbdkit?.port ?? 10809), nbdkit: nbdkit)
            do {
                try await body(world)
            } catch {
                await nbdkit?.stop()
                throw error
            }
            await nbdkit?.stop()
        }
    }

    /// A reconciler as a worker of the appliance builds it (each call a new one, as on another worker).
    func reconciler() -> Reconciler {
        Reconciler(environment: harness.environment, database: db.client, exportBackend: backend, logger: testLogger)
    }

    func reconcile(dryRun: Bool = false) async throws -> ReconcileReport {
        try await reconciler().reconcile(dryRun: dryRun)
    }

    /// A volume attached to the appliance through volumed (an attach operation run by a worker).
    func attachedThroughVolumed() async throws -> String {
        let volumeId = try await harness.cloudVolume()
        let worker = harness.startWorker()
        let row = try await harness.finished(try await harness.enqueue("attach", volume: volumeId, vm: appliance))
        try await worker.stop()
        try #require(row.status == "completed", "\(row.error ?? "")")
        return volumeId
    }

    /// Detaches in CloudStack directly, outside volumed (the simulator removes the by-id link).
    func detachOutsideVolumed(_ volumeId: String) async throws {
        let jobId = try await harness.client.detachVolume(id: volumeId)
        _ = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
    }

    /// The by-id link the simulator creates for the volume.
    func link(_ volumeId: String) throws -> String {
        try #require(harness.simulator.byIDLinkPath(forVolumeID: volumeId))
    }

    /// An active export of the volume, as the export handler leaves it: its row (device path the
    /// by-id link) and its entry pointing at `entryTarget` (the link unless said otherwise).
    func export(_ volumeId: String, disk: Int = 0, entryTarget: String? = nil) async throws {
        let byId = try link(volumeId)
        try await db.query("""
            INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name)
            VALUES ('\(otherVM)', \(disk), '\(volumeId)', 'migration-vol-\(volumeId)', '\(byId)', \(backend.port), 'job-1', 'source-vm')
            """)
        try await backend.publish(exportName: "migration-vol-\(volumeId)", devicePath: entryTarget ?? byId)
    }

    func exportStatus(_ volumeId: String) async throws -> String? {
        try await db.scalar("SELECT status FROM vm_export_mappings WHERE volume_id = '\(volumeId)'")
    }

    /// Export entry name → target.
    func entries() async throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try await backend.listExports().map { ($0.name, $0.targetPath) })
    }

    /// Every row of the tables reconcile may write, as text: equal before and after means untouched.
    func tables() async throws -> [String] {
        var rows: [String] = []
        for table in ["device_mappings", "volumes", "vm_export_mappings", "volume_operations"] {
            rows += try await db.query("SELECT '\(table) ' || t::text FROM \(table) t ORDER BY t::text").compactMap { $0 }
        }
        return rows
    }

    /// A sparse file of `bytes`, standing in for the device a link is re-pointed to.
    func newDevice(_ name: String, bytes: Int64 = GiB) throws -> String {
        let path = harness.diskDirectory.appendingPathComponent(name).path
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(bytes))
        try handle.close()
        return realPath(path)
    }

    /// Re-points the volume's by-id link, as udev does after a reboot named the disk differently.
    func repointLink(_ volumeId: String, to target: String) throws {
        let path = try link(volumeId)
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }
}

extension ReconcileReport {
    /// (kind, volume) of each planned or applied action, sorted, for comparisons.
    static func keys(_ actions: [ReconcileAction]) -> [String] {
        actions.map { "\($0.kind.rawValue) \($0.volumeId ?? "-")" }.sorted()
    }

    func findings(_ kind: ReconcileFindingKind) -> [ReconcileFinding] {
        unresolved.filter { $0.kind == kind }
    }
}
