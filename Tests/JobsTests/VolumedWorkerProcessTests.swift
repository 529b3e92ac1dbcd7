import NBD
import CloudStackSimulator
import DevServices
import Foundation
import Operations
import Schema
import TestSupport
import Testing

/// The real `volumed worker` executable, configured only through its environment, against
/// the simulator, real PostgreSQL and a real nbdkit.
@Suite struct VolumedWorkerProcessTests {
    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    @Test func theWorkerReconcilesExportsAtStartThenAttachesAndExportsThroughTheQueue() async throws {
        try await HandlerHarness.with { harness in
            let exports = harness.byIDDirectory.deletingLastPathComponent().appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            // A stray export left by a crash: no active mapping behind it.
            let stray = exports.appendingPathComponent("migration-vol-\(UUID().uuidString.lowercased())")
            try FileManager.default.createSymbolicLink(atPath: stray.path, withDestinationPath: "/dev/null")
            let nbdkit = try await NbdkitServer.start(exportDirectory: exports.path)
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-worker-\(UUID().uuidString.prefix(6)).log").path
            let worker = try ChildProcess(
                executable: URL(fileURLWithPath: Self.volumed), arguments: ["worker"], outputPath: log,
                environment: [
                    "DATABASE_URL": harness.db.urlText,
                    "CLOUDSTACK_API_URL": harness.simulator.apiURL,
                    "CLOUDSTACK_API_KEY": HandlerHarness.apiKey, "CLOUDSTACK_SECRET_KEY": HandlerHarness.secretKey,
                    "VOLUMED_APPLIANCE_VM_ID": harness.appliance, "VOLUMED_BY_ID_DIR": harness.byIDDirectory.path, "VOLUMED_ALLOW_FILE_DEVICES": "1",
                    "VOLUMED_NBD_EXPORT_DIR": exports.path, "VOLUMED_NBD_PORT": "\(nbdkit.port)",
                ])
            do {
                try await eventually("the stray export to be removed at start") {
                    !FileManager.default.fileExists(atPath: stray.path) && (try? FileManager.default.destinationOfSymbolicLink(atPath: stray.path)) == nil
                }
                let create = try await harness.db.scalar("""
                    INSERT INTO volume_operations (type, request) VALUES ('create',
                      '{"name": "p1", "size": 1073741824, "zone_id": "\(SimulatorConfiguration.zoneID)", "disk_offering_id": "\(SimulatorConfiguration.customDiskOfferingID)"}')
                    RETURNING id::text
                    """)!
                try await eventually("create") { try await harness.db.scalar("SELECT status FROM volume_operations WHERE id = '\(create)'") == "completed" }
                let volume = try await harness.db.scalar("SELECT volume_id FROM volume_operations WHERE id = '\(create)'")!
                try await harness.db.query("INSERT INTO volume_operations (type, volume_id, vm_id) VALUES ('attach', '\(volume)', '\(harness.appliance)')")
                try await harness.db.query("""
                    INSERT INTO volume_operations (type, volume_id, vm_id, request)
                    VALUES ('export', '\(volume)', '\(otherVM)', '{"job_id": "j", "vm_name": "vm", "disk_unit_number": 0}')
                    """)
                try await eventually("attach and export") {
                    try await harness.db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed'") == 3
                }
                #expect(try await harness.db.scalar("SELECT operation_mode FROM device_mappings WHERE volume_id = '\(volume)'") == "appliance")
                let size = try await NBDHandshake.check(host: "127.0.0.1", port: nbdkit.port, exportName: "migration-vol-\(volume)")
                #expect(size == 1 << 30)
            } catch {
                worker.send(SIGTERM)
                _ = await worker.waitForExit()
                await nbdkit.stop()
                Issue.record("worker log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                throw error
            }
            worker.send(SIGTERM)
            #expect(await worker.waitForExit() == 0)
            await nbdkit.stop()
        }
    }

    @Test func aWorkerKilledDuringAnAttachJobIsResumedWithExactlyOneAttach() async throws {
        // A 3 s attach job: long enough to kill the worker while it waits on it.
        try await HandlerHarness.with(asyncDelay: .seconds(3)) { harness in
            let volume = try await harness.cloudVolume()
            func startWorker(_ name: String) throws -> ChildProcess { try Self.startLeasedWorker(name, harness) }
            let doomed = try startWorker("doomed")
            let id = try await harness.db.scalar(
                "INSERT INTO volume_operations (type, volume_id, vm_id) VALUES ('attach', '\(volume)', '\(harness.appliance)') RETURNING id::text")!
            try await eventually("the attach job id in the checkpoint") {
                try await harness.db.scalar("SELECT checkpoint::text FROM volume_operations WHERE id = '\(id)'")?.contains("job") == true
            }
            doomed.send(SIGKILL)
            _ = await doomed.waitForExit()
            let survivor = try startWorker("survivor")
            try await eventually(timeout: .seconds(40), "the rescued attach to complete") {
                try await harness.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "completed"
            }
            survivor.send(SIGTERM)
            #expect(await survivor.waitForExit() == 0)
            #expect(await harness.simulator.state().sideEffects(for: volume).attachVolume == 1)
            #expect(try await harness.db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(id)'") == "2")
            #expect(try await harness.db.scalar("SELECT operation_mode FROM device_mappings WHERE volume_id = '\(volume)'") == "appliance")
        }
    }

    @Test func aWorkerKilledWhileACleanupDetachesIsResumedWithoutRepeatingAStep() async throws {
        // 1 s jobs: long enough to kill the worker while it waits on the detach.
        try await HandlerHarness.with(asyncDelay: .seconds(1)) { harness in
            let testVM = try await harness.testVM()
            let volume = try await harness.cloudVolume()
            _ = try await harness.client.waitForJob(
                jobId: try await harness.client.attachVolume(id: volume, virtualMachineId: testVM, deviceId: 0), timeout: .seconds(10))
            try await harness.cloudStartVM(testVM)
            let before = await harness.sideEffects(volume)
            func startWorker(_ name: String) throws -> ChildProcess { try Self.startLeasedWorker(name, harness) }
            let doomed = try startWorker("doomed-cleanup")
            let id = try await harness.cleanup(volume, testVM: testVM)
            try await eventually(timeout: .seconds(30), "the detach job id in the checkpoint") {
                try await harness.checkpointHasJob(id, step: "detach")
            }
            doomed.send(SIGKILL)
            _ = await doomed.waitForExit()
            let survivor = try startWorker("survivor-cleanup")
            try await eventually(timeout: .seconds(40), "the rescued cleanup to complete") {
                try await harness.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "completed"
            }
            survivor.send(SIGTERM)
            #expect(await survivor.waitForExit() == 0)
            #expect(try await harness.db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(id)'") == "2")
            #expect(HandlerHarness.delta(before, await harness.sideEffects(volume)) == SimulatorState.SideEffects(attachVolume: 1, detachVolume: 1))
            #expect(await harness.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(stopVirtualMachine: 1, startVirtualMachine: 1))
            #expect(await harness.attachedVM(volume) == harness.appliance)
            #expect(try await harness.db.scalar("SELECT operation_mode FROM device_mappings WHERE volume_id = '\(volume)'") == "appliance")
        }
    }

    /// A `volumed worker` with a 5 s lease (so a killed one is rescued quickly), configured
    /// through its environment only, logging to a temporary file.
    static func startLeasedWorker(_ name: String, _ harness: HandlerHarness) throws -> ChildProcess {
        let environment = [
            "DATABASE_URL": harness.db.urlText, "CLOUDSTACK_API_URL": harness.simulator.apiURL,
            "CLOUDSTACK_API_KEY": HandlerHarness.apiKey, "CLOUDSTACK_SECRET_KEY": HandlerHarness.secretKey,
            "VOLUMED_APPLIANCE_VM_ID": harness.appliance, "VOLUMED_BY_ID_DIR": harness.byIDDirectory.path, "VOLUMED_ALLOW_FILE_DEVICES": "1",
            "VOLUMED_NBD_EXPORT_DIR": harness.byIDDirectory.path,
        ]
        return try ChildProcess(
            executable: URL(fileURLWithPath: volumed), arguments: ["worker", "--lease-seconds", "5"],
            outputPath: FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(6)).log").path,
            environment: environment)
    }
}
