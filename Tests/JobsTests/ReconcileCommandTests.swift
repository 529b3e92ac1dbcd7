import CloudStackSimulator
import DevServices
import Foundation
import Operations
import TestSupport
import Testing

/// The real `volumed` executable: `volumed reconcile` (output and exit status) and the
/// periodic reconcile of `volumed worker`, configured only through the environment.
@Suite("volumed reconcile (process)")
struct ReconcileCommandTests {
    @Test("reconcile --dry-run plans (exit 3), reconcile repairs (exit 0), unresolved findings exit 2")
    func exitStatusesAndOutput() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.harness.cloudVolume()
            try await world.harness.cloudAttach(volumeId, to: world.appliance)

            let plan = try await volumed(["reconcile", "--dry-run", "--json"], world)
            #expect(plan.status == 3, "\(plan.output)")
            let planned = try json(plan.output)
            #expect(planned["dry_run"] as? Bool == true)
            #expect((planned["planned"] as? [[String: Any]])?.map { "\($0["kind"]!) \($0["volume_id"]!)" } == ["adopt_volume \(volumeId)"])
            #expect((planned["applied"] as? [Any])?.isEmpty == true)
            #expect(try await world.harness.mapping(volumeId) == nil)

            let run = try await volumed(["reconcile", "--json"], world)
            #expect(run.status == 0, "\(run.output)")
            #expect((try json(run.output)["applied"] as? [[String: Any]])?.first?["kind"] as? String == "adopt_volume")
            #expect(try await world.harness.mapping(volumeId)?.byIdPath == (try world.link(volumeId)))

            let vanished = randomVolumeId()
            try await world.db.query("INSERT INTO volumes (volume_id, name, size_bytes, state) VALUES ('\(vanished)', 'gone', \(GiB), 'Ready')")
            let report = try await volumed(["reconcile"], world)
            #expect(report.status == 2, "\(report.output)")
            #expect(report.output.contains("unresolved:\n  volume_unknown_to_cloudstack \(vanished): volumes lists \(vanished)"), "\(report.output)")
        }
    }

    @Test("volumed worker reconciles on its own every VOLUMED_RECONCILE_INTERVAL seconds and stops cleanly")
    func theWorkerReconcilesPeriodically() async throws {
        try await ReconcileWorld.run { world in
            let refused = try await volumed(["worker"], world, extra: ["VOLUMED_RECONCILE_INTERVAL": "soon"])
            #expect(refused.status == 64, "\(refused.output)")
            #expect(refused.output.contains("VOLUMED_RECONCILE_INTERVAL must be a whole number of seconds, 0 to turn periodic reconcile off (got soon)"),
                    "\(refused.output)")

            let log = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-reconcile-worker-\(UUID().uuidString.prefix(6)).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            let worker = try ChildProcess(executable: Self.executable, arguments: ["worker"], outputPath: log,
                                          environment: environment(world, extra: ["VOLUMED_RECONCILE_INTERVAL": "1"]))
            do {
                let volumeId = try await world.harness.cloudVolume()
                try await world.harness.cloudAttach(volumeId, to: world.appliance)
                try await eventually(timeout: .seconds(15), "the worker's periodic reconcile to adopt the volume") {
                    try await world.harness.mapping(volumeId)?.mode == "appliance"
                }
            } catch {
                worker.send(SIGTERM)
                _ = await worker.waitForExit()
                Issue.record("worker log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                throw error
            }
            worker.send(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed")
    }

    private func environment(_ world: ReconcileWorld, extra: [String: String] = [:]) -> [String: String] {
        [
            "DATABASE_URL": world.db.urlText, "CLOUDSTACK_API_URL": world.harness.simulator.apiURL,
            "CLOUDSTACK_API_KEY": HandlerHarness.apiKey, "CLOUDSTACK_SECRET_KEY": HandlerHarness.secretKey,
            "VOLUMED_APPLIANCE_VM_ID": world.appliance, "VOLUMED_BY_ID_DIR": world.harness.byIDDirectory.path, "VOLUMED_ALLOW_FILE_DEVICES": "1",
            "VOLUMED_NBD_EXPORT_DIR": world.exportDirectory,
        ].merging(extra) { _, new in new }
    }

    /// Runs `volumed ARGUMENTS` to completion; returns its exit status and output (stdout and stderr).
    private func volumed(_ arguments: [String], _ world: ReconcileWorld, extra: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-cli-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try ChildProcess(executable: Self.executable, arguments: arguments, outputPath: log,
                                     environment: environment(world, extra: extra))
        let status = await child.waitForExit()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    private func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }
}
