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
                environment: [
                    "DATABASE_URL": db.urlText, "CLOUDSTACK_API_URL": simulator.apiURL,
                    "CLOUDSTACK_API_KEY": APIWorld.apiKey, "CLOUDSTACK_SECRET_KEY": APIWorld.secretKey,
                    "VOLUMED_APPLIANCE_VM_ID": appliance, "VOLUMED_BY_ID_DIR": scratch.byID.path,
                    "VOLUMED_NBD_EXPORT_DIR": scratch.exports.path, "VOLUMED_NBD_PORT": "\(nbdkit.port)",
                    "VOLUMED_HTTP_ADDR": "127.0.0.1:\(port)",
                ])
            let client = OriginalVolumeClient(baseURL: "http://127.0.0.1:\(port)")
            do {
                try await eventually("volumed serve to answer /health") { (try? await client.healthCheck()) != nil }
                try await Self.replicationAndTestFailover(client, simulator: simulator, appliance: appliance, nbdPort: nbdkit.port, db: db)
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

    static func replicationAndTestFailover(
        _ client: OriginalVolumeClient, simulator: CloudStackSimulator, appliance: String, nbdPort: Int, db: TestDatabase
    ) async throws {
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

        // nbd/server.go and the reused-volume path: GetVolumeDevice, DevicePath non-empty.
        let mapping = try await client.getVolumeDevice(volume)
        #expect(mapping.devicePath == devicePath && mapping.vmID == appliance && mapping.volumeID == volume)
        #expect(mapping.size == 7 << 30 && mapping.lastSync != nil && mapping.createdAt != nil, "\(mapping)")
        // ListVolumes: a bare array; attached_at a string.
        let listed = try await client.listVolumes(appliance)
        #expect(listed.map(\.volumeID) == [volume] && listed.first?.devicePath == devicePath && !(listed.first?.attachedAt.isEmpty ?? true))
        #expect(try await client.listVolumes(otherVM).isEmpty)

        // CreateNBDExport: 200/201 with the export object, synchronously (the original's contract).
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
