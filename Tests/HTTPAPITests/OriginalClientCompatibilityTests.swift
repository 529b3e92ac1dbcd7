import AsyncHTTPClient
import CloudStackSimulator
import DevServices
import Foundation
import NIOCore
import TestSupport
import Testing

/// The original daemon's callers, unchanged, against the real `volumed serve` executable
/// (configured only by its environment, no token — the original had none): every method of
/// `common.VolumeClient` and every direct call of the snapshot service, the migration
/// workflow and the NBD server code, in the order a replication and a test failover make
/// them, each answer decoded with the Go structs' field names and types.
@Suite(.serialized) struct OriginalClientCompatibilityTests {
    static let vmContext = "ctx-pgtest1-20250909-113839"

    @Test func everyCallOfTheOriginalClientWorksAgainstVolumedServe() async throws {
        try await Self.withServe { world in
            try await Self.replicationAndTestFailover(world)
        }
    }

    /// `sha/workflows/migration.go`: attachOSSEAVolumes then queryNBDExportsFromVolumeDaemon,
    /// which reads each volume's export right after its attach and fails when there is none
    /// (the original daemon made it during the attach), and the detach that removed it.
    @Test func theMigrationWorkflowFindsTheExportItsAttachMade() async throws {
        try await Self.withServe { world in
            let client = world.client
            var volumes: [String] = []
            for disk in 0..<2 {
                let created = try await client.createVolume(.init(
                    name: "migration-pgtest2-pgtest2-disk-\(disk)", size: 1 << 30, disk_offering_id: offering, zone_id: zone,
                    metadata: ["migration_job_id": "job-2", "disk_unit_number": "\(disk)"]))
                volumes.append(try #require(try await client.waitForCompletion(created.id).response["volume_id"]?.string))
            }
            var exports: [GoNBDExportInfo] = []
            for volume in volumes {
                let attached = try await client.waitForCompletion(try await client.attachVolume(volume, vmID: world.appliance).id)
                let devicePath = try #require(attached.response["device_path"]?.string, "\(attached.response)")
                #expect(attached.response["export_name"]?.string == "migration-vol-\(volume)", "\(attached.response)")
                // GetNBDExport immediately, as the workflow does; it uses Port, ExportName, DevicePath, Status.
                let export = try await client.getNBDExport(volume)
                #expect(export.exportName == "migration-vol-\(volume)" && export.port == Int64(world.nbdPort), "\(export)")
                #expect(export.devicePath == devicePath && export.status == "active" && export.volumeID == volume, "\(export)")
                #expect(export.metadata["vm_name"] == world.appliance, "the original fell back to the VM id for vm_name")
                try await Self.expectServedByteForByte(world, volume: volume, exportName: export.exportName)
                exports.append(export)
            }
            // Each export keyed to the appliance under its own next free disk number.
            #expect(try await world.db.scalar("""
                SELECT string_agg(disk_unit_number::text, ',' ORDER BY disk_unit_number) FROM vm_export_mappings
                WHERE vm_id = '\(world.appliance)' AND status = 'active'
                """) == "0,1")

            // DetachVolume (no body, no force): the export goes with the attachment.
            for (volume, export) in zip(volumes, exports) {
                let detached = try await client.waitForCompletion(try await client.detachVolume(volume).id)
                #expect(detached.status == "completed" && detached.error.isEmpty, "\(detached.error)")
                #expect(try await client.getNBDExport(volume).status == "removed")
                #expect(!FileManager.default.fileExists(atPath: world.scratch.exports.appendingPathComponent(export.exportName).path))
                let read = try await ProcessRunner.run(
                    ["nbdcopy", world.nbdkit.uri(exportName: export.exportName), "null:"], check: false)
                #expect(read.status != 0, "nbdkit no longer serves \(export.exportName)")
                _ = try await client.waitForCompletion(try await client.deleteVolume(volume).id)
            }
        }
    }

    /// What the tests drive: `volumed serve` configured only by its environment (no token —
    /// the original had none), beside a CloudStack simulator and a real nbdkit.
    struct ServeWorld: Sendable {
        let client: OriginalVolumeClient
        let simulator: CloudStackSimulator
        let nbdkit: NbdkitServer
        let appliance: String
        let db: TestDatabase
        let scratch: Scratch
        var nbdPort: Int { nbdkit.port }
    }

    static func withServe(_ body: @escaping @Sendable (ServeWorld) async throws -> Void) async throws {
        try await withDatabase { db in
            let scratch = try Scratch()
            defer { scratch.remove() }
            let simulator = try await scratch.startSimulator()
            let nbdkit = try await NbdkitServer.start(exportDirectory: scratch.exports.path)
            let port = try NbdkitServer.freeLoopbackPort()
            let appliance = simulator.configuration.applianceVMID
            let log = scratch.root.appendingPathComponent("serve.log").path
            let serve = try ChildProcess(
                executable: URL(fileURLWithPath: ServeProcessTests.volumed), arguments: ["serve"], outputPath: log,
                environment: scratch.serveEnvironment(databaseURL: db.urlText, simulator: simulator, nbdPort: nbdkit.port, httpPort: port))
            let client = OriginalVolumeClient(baseURL: "http://127.0.0.1:\(port)")
            do {
                try await eventually("volumed serve to answer /health") { (try? await client.healthCheck()) != nil }
                try await body(ServeWorld(client: client, simulator: simulator, nbdkit: nbdkit, appliance: appliance, db: db, scratch: scratch))
            } catch {
                Issue.record("volumed serve log: \((try? String(contentsOfFile: log, encoding: .utf8))?.suffix(4000) ?? "")")
                serve.send(SIGTERM)
                _ = await serve.waitForExit()
                await nbdkit.stop()
                await simulator.stop()
                throw error
            }
            serve.send(SIGTERM)
            #expect(await serve.waitForExit() == 0)
            await nbdkit.stop()
            await simulator.stop()
        }
    }

    /// Writes random bytes at the start and the middle of the volume's simulated disk, reads
    /// the whole export with nbdcopy and compares it with the disk byte for byte (`cmp`).
    static func expectServedByteForByte(_ world: ServeWorld, volume: String, exportName: String) async throws {
        let disk = world.scratch.disks.appendingPathComponent(volume + ".img")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: disk.path)[.size] as? Int)
        let handle = try FileHandle(forWritingTo: disk)
        for offset in [0, size / 2] {
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data((0..<65536).map { _ in UInt8.random(in: 0 ... .max) }))
        }
        try handle.close()
        let copy = world.scratch.root.appendingPathComponent("\(exportName).copy").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try await ProcessRunner.run(["nbdcopy", world.nbdkit.uri(exportName: exportName), copy])
        let compared = try await ProcessRunner.run(["cmp", disk.path, copy], check: false)
        #expect(compared.status == 0, "the export serves the volume's bytes: \(compared.output)")
    }

    static func replicationAndTestFailover(_ world: ServeWorld) async throws {
        let (client, simulator, appliance, nbdPort, db) = (world.client, world.simulator, world.appliance, world.nbdPort, world.db)
        // migration.go provisionOSSEAVolumes: CreateVolume (CapacityBytes + 5 GB, metadata), then
        // WaitForCompletionWithTimeout and Response["volume_id"].(string).
        let created = try await client.createVolume(.init(
            name: "migration-pgtest1-pgtest1-disk-0", size: (1 << 30) + (5 << 30) + 4096, disk_offering_id: offering, zone_id: zone,
            metadata: ["migration_job_id": "job-1", "disk_unit_number": "0", "created_by": "migratekit-migration-engine"]))
        #expect(created.type == "create" && !created.id.isEmpty && created.createdAt != nil && created.vmID == nil && created.volumeID.isEmpty)
        let createDone = try await client.waitForCompletion(created.id, timeout: .seconds(120))
        let volume = try #require(createDone.response["volume_id"]?.string, "\(createDone.response)")
        #expect(createDone.completedAt != nil && createDone.error.isEmpty)

        // attachOSSEAVolumes: AttachVolume to the appliance, wait, Response["device_path"].(string),
        // then os.Stat of that path (verifyDevicePaths).
        let attach = try await client.attachVolume(volume, vmID: appliance)
        #expect(attach.type == "attach" && attach.vmID == appliance && attach.volumeID == volume)
        let attached = try await client.waitForCompletion(attach.id)
        let devicePath = try #require(attached.response["device_path"]?.string, "\(attached.response)")
        #expect(FileManager.default.fileExists(atPath: devicePath), "verifyDevicePaths stats \(devicePath)")
        // queryNBDExportsFromVolumeDaemon: GetNBDExport right after, the export the attach made.
        let made = try await client.getNBDExport(volume)
        #expect(made.exportName == "migration-vol-\(volume)" && made.port == Int64(nbdPort) && made.devicePath == devicePath, "\(made)")
        #expect(made.status == "active" && made.metadata["vm_name"] == appliance, "\(made)")

        // nbd/server.go and the reused-volume path: GetVolumeDevice, DevicePath non-empty.
        let mapping = try await client.getVolumeDevice(volume)
        #expect(mapping.devicePath == devicePath && mapping.vmID == appliance && mapping.volumeID == volume)
        #expect(mapping.size == 7 << 30 && mapping.lastSync != nil && mapping.createdAt != nil, "\(mapping)")
        // ListVolumes: a bare array; attached_at a string.
        let listed = try await client.listVolumes(appliance)
        #expect(listed.map(\.volumeID) == [volume] && listed.first?.devicePath == devicePath && !(listed.first?.attachedAt.isEmpty ?? true))
        #expect(try await client.listVolumes(otherVM).isEmpty)

        // CreateNBDExport: 200/201 with the export object, synchronously (the original's contract);
        // for the source VM's disk it takes over the export the attach made (same name and entry).
        let export = try await client.createNBDExport(.init(volume_id: volume, vm_name: "pgtest1", vm_id: otherVM, disk_number: 0))
        #expect(export.exportName == "migration-vol-\(volume)" && export.port == Int64(nbdPort), "\(export)")
        #expect(export.devicePath == devicePath && export.status == "active" && export.volumeID == volume && !export.id.isEmpty)
        #expect(export.metadata["vm_name"] == "pgtest1" && export.createdAt != nil)
        // queryNBDExportsFromVolumeDaemon: GetNBDExport after the attach.
        let read = try await client.getNBDExport(volume)
        #expect(read.exportName == export.exportName && read.port == export.port && read.devicePath == devicePath)
        // ListNBDExports: the server's `{exports, count}`, as the original server answered (the
        // Go client's decode into a bare array failed against that server too; see the README).
        let listBody = try await client.listNBDExportsBody(vmName: "pgtest1", status: "active")
        #expect((try? JSONDecoder().decode([GoNBDExportInfo].self, from: Data(listBody.utf8))) == nil)
        struct ExportList: Decodable { let exports: [GoNBDExportInfo]; let count: Int }
        let list = try JSONDecoder().decode(ExportList.self, from: Data(listBody.utf8))
        #expect(list.count == 1 && list.exports.first?.exportName == export.exportName)

        // Test failover, snapshot service: track, read back, mark rolled back, clear.
        let snapshotID = UUID().uuidString.lowercased()
        try await client.trackSnapshot(volumeUUID: volume, vmContextID: vmContext, snapshotID: snapshotID,
                                       snapshotName: "multi-test-failover-disk-2000-1", diskID: "disk-2000")
        let snapshots = try await client.getVMSnapshots(vmContext)
        #expect(snapshots.count == 1 && snapshots.first?.snapshotID == snapshotID && snapshots.first?.snapshotStatus == "ready")
        #expect(snapshots.first?.snapshotCreatedAt != nil && snapshots.first?.devicePath == devicePath && snapshots.first?.operationMode == "oma")
        #expect(try await client.getVolumeDevicePath(volume) == devicePath)
        try await client.updateSnapshotStatus(volume, status: "rollback_complete")
        #expect(try await client.getVMSnapshots(vmContext).first?.snapshotStatus == "rollback_complete")
        try await client.clearVMSnapshotTracking(vmContext)
        let cleared = try await client.getVMSnapshots(vmContext)
        #expect(cleared.first?.snapshotID == nil && cleared.first?.snapshotCreatedAt == nil && cleared.first?.snapshotStatus == "none")

        // DeleteNBDExport: 200 once it is gone; DetachVolume (no body).
        try await client.deleteNBDExport(volume)
        #expect(try await client.getNBDExport(volume).status == "removed")
        _ = try await client.waitForCompletion(try await client.detachVolume(volume).id)
        #expect(try await client.listVolumes(appliance).isEmpty)

        // AttachVolumeAsRoot to a stopped test VM, then CleanupTestFailover (with oma_vm_id).
        let testVM = try await simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "pgtest1-test"))
        let root = try await client.attachVolumeAsRoot(volume, vmID: testVM.id)
        #expect(root.request["attach_as"]?.string == "root")
        _ = try await client.waitForCompletion(root.id)
        let onTestVM = try await client.getVolumeDevice(volume)
        #expect(onTestVM.vmID == testVM.id && onTestVM.devicePath.isEmpty, "a remote VM's disk has no path here")
        let cleanup = try await client.cleanupTestFailover(testVMID: testVM.id, volumeID: volume, shaVMID: appliance, deleteVM: true)
        #expect(cleanup.type == "cleanup" && cleanup.vmID == appliance)
        let cleaned = try await client.waitForCompletion(cleanup.id)
        #expect(cleaned.response["device_path"]?.string == devicePath)

        // GetOperation of an unknown id: not 200, read through handleErrorResponse.
        await #expect(throws: OriginalVolumeClient.Refused.self) { try await client.getOperation(UUID().uuidString.lowercased()) }

        // DeleteVolume: detached first (the original's delete of an attached volume failed too).
        _ = try await client.waitForCompletion(try await client.detachVolume(volume).id)
        let deleted = try await client.waitForCompletion(try await client.deleteVolume(volume).id)
        #expect(deleted.type == "delete" && deleted.status == "completed")
        #expect(try await db.scalar("SELECT state FROM volumes WHERE volume_id = '\(volume)'") == "Deleted")
    }
}
