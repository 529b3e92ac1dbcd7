import CloudStackSimulator
import DevServices
import Foundation
import Operations
import Schema
import TestSupport
import Testing
import Worker

/// An appliance deployed with a virtio-scsi root disk: KVM hot-plugs its data disks on the
/// SCSI bus too (`KVMStorageProcessor.attachOrDetachDisk`), and udev links them as
/// `scsi-0QEMU_QEMU_HARDDISK_<serial>`. The whole flow through the queue, with late links:
/// attach, the mapping holding the link found, export, the bytes read back over NBD, detach.
@Suite struct ScsiApplianceRoundTripTests {
    @Test func onASCSIApplianceAVolumeIsAttachedExportedReadBackOverNBDAndDetached() async throws {
        var faults = SimulatorFaults()
        faults.linkCreateDelayMs = 300
        faults.linkRemoveDelayMs = 300
        try await HandlerHarness.with(faults: faults, applianceDiskBus: .scsi) { h in
            try await h.withServedExports { nbdkit, handlers in try await roundTrip(h, nbdkit: nbdkit, handlers: handlers) }
        }
    }

    private func roundTrip(_ h: HandlerHarness, nbdkit: NbdkitServer, handlers: [OperationType: any OperationHandler]) async throws {
        let worker = h.startWorker(handlers: handlers)

        let volumeId = try await h.cloudVolume()
        let serial = CloudStackSimulator.diskSerial(forVolumeID: volumeId)
        let scsiLink = h.byIDDirectory.appendingPathComponent("scsi-0QEMU_QEMU_HARDDISK_" + serial).path
        #expect(h.simulator.byIDLinkPath(forVolumeID: volumeId) == scsiLink)

        let attach = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
        try #require(attach.status == "completed", "\(attach.errorCode ?? ""): \(attach.error ?? "")")
        #expect(try attach.json()["device_path"] as? String == scsiLink)
        let mapping = try #require(try await h.mapping(volumeId))
        #expect(mapping.byIdPath == scsiLink, "the mapping records the link udev made")
        #expect(mapping.devicePath == h.backingFile(volumeId))
        #expect(!FileManager.default.fileExists(atPath: h.byIDDirectory.appendingPathComponent("virtio-" + serial).path))

        // Replication writes through the link: a block at the start and one deep inside.
        let written = try writeRandomBlocks(scsiLink, at: [0, 700 * 1024 * 1024 + 4096])

        let export = try await h.finished(try await h.enqueue(
            "export", volume: volumeId, vm: otherVM, request: #"{"job_id":"scsi-1","vm_name":"db-01","disk_unit_number":0}"#))
        try #require(export.status == "completed", "\(export.errorCode ?? ""): \(export.error ?? "")")
        #expect(try export.json()["device_path"] as? String == scsiLink)

        // Every byte of the export, copied over NBD, equals the disk (the holes included).
        let scratch = try ScratchDirectory("volumed-scsi-read")
        defer { scratch.remove() }
        let copy = scratch.child("copy.img")
        try await runTool(try NbdTools.nbdcopy().path, [nbdkit.uri(exportName: "migration-vol-\(volumeId)"), copy]).requireSuccess()
        try await runTool("/usr/bin/cmp", [copy, h.backingFile(volumeId)]).requireSuccess()
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: copy))
        defer { try? handle.close() }
        for (offset, bytes) in written {
            try handle.seek(toOffset: offset)
            #expect(try handle.read(upToCount: bytes.count) == bytes, "bytes at \(offset)")
        }

        let detach = try await h.finished(try await h.enqueue("detach", volume: volumeId, request: #"{"force":true}"#))
        #expect(detach.status == "completed", "\(detach.errorCode ?? ""): \(detach.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: scsiLink), "detach completed while the SCSI link was still present")
        #expect(try await h.mapping(volumeId) == nil)
        #expect(try await h.db.count("SELECT count(*)::text FROM vm_export_mappings WHERE status = 'active'") == 0)
        #expect(await h.sideEffects(volumeId) == SimulatorState.SideEffects(createVolume: 1, attachVolume: 1, detachVolume: 1))
        try await worker.stop()
    }

    /// 64 KiB of random bytes at each offset, written through `link`; returns what was written where.
    private func writeRandomBlocks(_ link: String, at offsets: [UInt64]) throws -> [(UInt64, Data)] {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: link))
        defer { try? handle.close() }
        return try offsets.map { offset in
            let bytes = Data((0..<65536).map { _ in UInt8.random(in: 0 ... .max) })
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: bytes)
            return (offset, bytes)
        }
    }
}
