import CloudStackSimulator
import DevServices
import Foundation
import Operations
import Schema
import TestSupport
import Testing
import Worker

/// The replication system's test failover, end to end through the queue: volumes created,
/// attached to the appliance and exported; handed to a test VM (one as its root disk) that
/// boots; cleaned up back to the appliance, the test VM destroyed; exported again with the
/// bytes replicated before the failover. Real PostgreSQL, the simulator, a real nbdkit.
@Suite struct TestFailoverRoundTripTests {
    static let sourceVM = otherVM

    @Test func aTestFailoverHandsThreeVolumesToATestVMAndBackToTheirExports() async throws {
        try await HandlerHarness.with { h in
            try await h.withServedExports { nbdkit, handlers in try await roundTrip(h, nbdkit: nbdkit, handlers: handlers) }
        }
    }

    private func roundTrip(_ h: HandlerHarness, nbdkit: NbdkitServer, handlers: [OperationType: any OperationHandler]) async throws {
        let worker = h.startWorker(handlers: handlers)

        // Replication: three volumes on the appliance, each with data, each exported.
        var volumes: [String] = []
        for index in 0..<3 {
            let create = try await h.finished(try await h.enqueue("create", request: """
                {"name":"failover-disk-\(index)","size":\(GiB),"zone_id":"\(SimulatorConfiguration.zoneID)",\
                "disk_offering_id":"\(SimulatorConfiguration.customDiskOfferingID)"}
                """))
            try #require(create.status == "completed", "\(create.error ?? "")")
            volumes.append(try #require(create.volumeId))
        }
        var replicated: [Data] = []
        for (disk, volumeId) in volumes.enumerated() {
            try #require(try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance)).status == "completed")
            replicated.append(try writeRandomPrefix(h.simulator.byIDLinkPath(forVolumeID: volumeId)!))
            let export = try await export(h, volumeId, disk: disk)
            try #require(export.status == "completed", "\(export.error ?? "")")
        }

        // Test failover: the volumes leave the appliance (their exports with them) for a
        // stopped test VM, the first as its root disk, which then boots.
        let testVM = try await h.testVM()
        for volumeId in volumes {
            let detach = try await h.finished(try await h.enqueue("detach", volume: volumeId, request: #"{"force":true}"#))
            try #require(detach.status == "completed", "\(detach.error ?? "")")
        }
        #expect(try await h.db.count("SELECT count(*)::text FROM vm_export_mappings WHERE status = 'active'") == 0)
        for (index, volumeId) in volumes.enumerated() {
            let request = index == 0 ? #"{"attach_as":"root"}"# : "{}"
            let attach = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: testVM, request: request))
            try #require(attach.status == "completed", "\(attach.error ?? "")")
        }
        #expect(try await h.db.count("SELECT count(*)::text FROM device_mappings WHERE vm_id = '\(testVM)' AND operation_mode = 'remote'") == 3)
        #expect(try await h.mapping(volumes[0])?.cloudStackDeviceId == 0)
        try await h.cloudStartVM(testVM)
        #expect(await h.vmState(testVM) == "Running")

        // Cleanup: each volume back to the appliance; the last one off destroys the test VM.
        var destroyed: [Bool?] = []
        for volumeId in volumes {
            let cleanup = try await h.finished(try await h.cleanup(volumeId, testVM: testVM, deleteVM: true))
            #expect(cleanup.status == "completed", "\(cleanup.errorCode ?? ""): \(cleanup.error ?? "")")
            destroyed.append(try cleanup.json()["test_vm_destroyed"] as? Bool)
            #expect(try cleanup.json()["device_path"] as? String == h.simulator.byIDLinkPath(forVolumeID: volumeId))
        }
        #expect(destroyed == [false, false, true])
        #expect(await h.vmState(testVM) == nil)
        #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(
            stopVirtualMachine: 1, startVirtualMachine: 1, destroyVirtualMachine: 1))

        // Replication resumes: the same exports again, serving the bytes written before.
        for (disk, volumeId) in volumes.enumerated() {
            #expect(try await h.mapping(volumeId)?.mode == "appliance")
            let export = try await export(h, volumeId, disk: disk)
            #expect(export.status == "completed", "\(export.error ?? "")")
            let served = try await readExportPrefix(nbdkit, "migration-vol-\(volumeId)", count: replicated[disk].count)
            #expect(served == replicated[disk], "export of disk \(disk) serves the replicated bytes")
            #expect(await h.sideEffects(volumeId) == SimulatorState.SideEffects(createVolume: 1, attachVolume: 3, detachVolume: 2))
        }
        #expect(try await h.db.count("SELECT count(*)::text FROM vm_export_mappings WHERE status = 'active' AND vm_id = '\(Self.sourceVM)'") == 3)
        try await worker.stop()
    }

    private func export(_ h: HandlerHarness, _ volumeId: String, disk: Int) async throws -> OperationRow {
        try await h.finished(try await h.enqueue(
            "export", volume: volumeId, vm: Self.sourceVM,
            request: #"{"job_id":"replication-7","vm_name":"erp-01","disk_unit_number":\#(disk)}"#))
    }

    /// What replication wrote: 64 KiB of random bytes at the start of the disk, through its by-id link.
    private func writeRandomPrefix(_ link: String) throws -> Data {
        let bytes = Data((0..<65536).map { _ in UInt8.random(in: 0 ... .max) })
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: link))
        defer { try? handle.close() }
        try handle.write(contentsOf: bytes)
        return bytes
    }

    /// The first `count` bytes of an export, copied over NBD (sparse: only data travels).
    private func readExportPrefix(_ nbdkit: NbdkitServer, _ exportName: String, count: Int) async throws -> Data {
        let scratch = try ScratchDirectory("volumed-failover-read")
        defer { scratch.remove() }
        let copy = scratch.child("disk.img")
        try await runTool(try NbdTools.nbdcopy().path, [nbdkit.uri(exportName: exportName), copy]).requireSuccess()
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: copy))
        defer { try? handle.close() }
        return try handle.read(upToCount: count) ?? Data()
    }
}
