import NBD
import Devices
import DevServices
import Foundation
import Glibc
import Operations
import TestSupport
import Testing

/// `export` through the queue, against a real nbdkit and PostgreSQL.
@Suite("export operation")
struct ExportHandlerTests {
    @Test("a by-id link re-pointed after the attach is refused: nothing published, an existing export left alone (issue 12 item 5)")
    func exportRefusesALinkThatNoLongerLeadsToTheDisk() async throws {
        try await ExportWorld.run { world in
            // A harmless file of ours standing in for /etc/shadow.
            let secret = try world.appliance.scratch.randomFile("shadow-stand-in", count: 4096)

            // A fresh export of a volume whose link now points at it.
            let fresh = randomVolumeId()
            let attached = try await world.attach(fresh)
            try repointSymlink(attached.byIdPath, to: secret.path)
            let refused = try await world.export(fresh, disk: 0)
            #expect(refused.status == "failed")
            #expect(refused.errorCode == "device_mismatch", "\(refused)")
            #expect(refused.error?.contains("4096 bytes") == true && refused.error?.contains(attached.byIdPath) == true, "\(refused)")
            #expect(try world.exportDirectoryEntries().isEmpty)
            #expect(try await world.mapping("migration-vol-\(fresh)") == nil)
            await #expect(throws: (any Error).self) { _ = try await world.appliance.readExport("migration-vol-\(fresh)") }

            // An export already active: repeating it with the link re-pointed fails and removes nothing.
            let exported = randomVolumeId()
            let disk = try await world.attach(exported, bytes: 512 * 1024)
            try #require(try await world.export(exported, disk: 1).status == "completed")
            try repointSymlink(disk.byIdPath, to: secret.path)
            let again = try await world.export(exported, disk: 1)
            #expect(again.errorCode == "device_mismatch", "\(again)")
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(exported)"])
            #expect(try await world.mapping("migration-vol-\(exported)")?.status == "active")
        }
    }

    @Test("only a block device passes unless the test/demo setting allows regular files (issue 12 item 5)")
    func onlyBlockDevicesInProduction() throws {
        let scratch = try ScratchDirectory("volumed-verify")
        defer { scratch.remove() }
        let volume = randomVolumeId()
        let file = try scratch.randomFile("disk", count: 8192)
        let byId = try scratch.makeDirectory("by-id")
        let link = byId + "/virtio-" + (try DiskSerial.serial(forVolumeId: volume))
        try repointSymlink(link, to: file.path)

        let production = ByIdResolver(directory: byId)
        let refused = #expect(throws: DeviceError.self) {
            try production.verifiedDevice(byIdPath: link, volumeId: volume, expectedSize: 8192)
        }
        #expect(refused?.kind == .deviceMismatch)
        #expect(refused?.message.contains("not a block device") == true, "\(String(describing: refused))")

        let demo = ByIdResolver(directory: byId, allowsRegularFiles: true)
        #expect(try demo.verifiedDevice(byIdPath: link, volumeId: volume, expectedSize: 8192).sizeBytes == 8192)
        #expect(throws: DeviceError.self) { try demo.verifiedDevice(byIdPath: link, volumeId: volume, expectedSize: 4096) }
        // A character device is no disk, whatever the setting.
        try repointSymlink(link, to: "/dev/null")
        #expect(throws: DeviceError.self) { try demo.verifiedDevice(byIdPath: link, volumeId: volume, expectedSize: nil) }
    }

    @Test("an export serves the volume's bytes under migration-vol-<id> and records an active row with the by-id path")
    func exportServesTheVolume() async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            let disk = try await world.attach(volume, bytes: 3 * 1024 * 1024 + 4096)
            let result = try await world.export(volume, disk: 2, vmName: "web-01")
            try #require(result.status == "completed", "\(result)")

            let name = "migration-vol-\(volume)"
            #expect(result.response[string: "export_name"] == name)
            #expect(result.response[int: "nbd_port"] == world.port)
            #expect(result.response[string: "device_path"] == disk.byIdPath)
            #expect(result.response[bool: "reused"] == false)
            #expect(result.response.keys == ["device_path", "export_name", "nbd_port", "reused"])

            #expect(try await world.appliance.readExport(name) == disk.bytes)

            let row = try #require(try await world.mapping(name))
            #expect(row.status == "active")
            #expect(row.devicePath == disk.byIdPath)
            #expect(row.devicePath.contains("/by-id/virtio-"))
            #expect(row.vmId == otherVM)
            #expect(row.diskUnitNumber == 2)
            #expect(row.volumeId == volume)
            #expect(row.nbdPort == world.port)
            #expect(row.jobId == "job-1")
            #expect(row.vmName == "web-01")
            #expect(try world.exportDirectoryEntries() == [name])
        }
    }

    @Test("exporting the same (VM, disk) again reuses the export and changes nothing; a lost entry is recreated")
    func secondExportIsReused() async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            let disk = try await world.attach(volume)
            let name = "migration-vol-\(volume)"
            try #require(try await world.export(volume, disk: 1).status == "completed")
            let before = try #require(try await world.mapping(name))
            let entry = world.appliance.exports + "/" + name
            let inode = try #require(entryInode(entry))

            let again = try await world.export(volume, disk: 1, vmName: "renamed-in-vcenter")
            try #require(again.status == "completed", "\(again)")
            #expect(again.response[bool: "reused"] == true)
            #expect(again.response[string: "export_name"] == name)
            #expect(again.response[string: "device_path"] == disk.byIdPath)
            #expect(again.response[int: "nbd_port"] == world.port)
            #expect(try await world.mapping(name) == before, "the row must not change, not even vm_name or updated_at")
            #expect(entryInode(entry) == inode, "the entry must not be re-published")

            // Someone cleaned the export directory: the row stays the truth, the entry comes back.
            try removeEntry(entry)
            let healed = try await world.export(volume, disk: 1)
            try #require(healed.status == "completed", "\(healed)")
            #expect(healed.response[bool: "reused"] == true)
            #expect(try await world.appliance.readExport(name) == disk.bytes)
            #expect(try await world.mapping(name) == before)
        }
    }

    @Test("the same (VM, disk) exported from another volume, or the volume for another disk, is a conflict")
    func conflictingExports() async throws {
        try await ExportWorld.run { world in
            let first = randomVolumeId()
            let second = randomVolumeId()
            try await world.attach(first)
            try await world.attach(second)
            try #require(try await world.export(first, disk: 0).status == "completed")

            // An entry an earlier attempt of the losing export may have left behind must go too.
            try makeSymlink(world.appliance.exports + "/migration-vol-\(second)", to: world.appliance.byId + "/virtio-x")
            let clash = try await world.export(second, disk: 0)
            #expect(clash.status == "failed")
            #expect(clash.errorCode == "export_conflict")
            #expect(clash.error?.contains("migration-vol-\(first)") == true)
            #expect(clash.error?.contains("unexport") == true)
            #expect(try await world.mapping("migration-vol-\(second)") == nil)
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(first)"])

            let moved = try await world.export(first, disk: 3)
            #expect(moved.errorCode == "export_conflict")
            #expect(try await world.mapping("migration-vol-\(first)")?.diskUnitNumber == 0)
        }
    }

    @Test("hostile vm_name values are data only: the export name stays migration-vol-<uuid> and nothing escapes")
    func hostileVMNames() async throws {
        try await ExportWorld.run { world in
            var names: [String] = []
            for (disk, vmName) in ["../x", "]", "[generic]\\u0020x", "a/b/../../etc"].enumerated() {
                let volume = randomVolumeId()
                try await world.attach(volume)
                let result = try await world.export(volume, disk: disk, vmName: vmName)
                try #require(result.status == "completed", "\(vmName): \(result)")
                #expect(result.response[string: "export_name"] == "migration-vol-\(volume)")
                names.append("migration-vol-\(volume)")
            }
            #expect(try await world.mapping(names[0])?.vmName == "../x")
            #expect(try await world.mapping(names[2])?.vmName == "[generic] x")
            #expect(try world.exportDirectoryEntries() == names.sorted())
            // Nothing was created outside the export directory ("../x" would land in the scratch root).
            let scratch = try FileManager.default.contentsOfDirectory(atPath: world.appliance.scratch.path)
            #expect(scratch.allSatisfy { ["by-id", "exports"].contains($0) || $0.hasPrefix("disk-") }, "\(scratch)")

            let volume = randomVolumeId()
            try await world.attach(volume)
            for (vmName, reason) in [("a\\nb", "U+000A"), ("tab\\there", "U+0009"), ("del\\u007f", "U+007F"),
                                     (String(repeating: "v", count: 256), "over the 255-character limit"), ("", "must not be empty")] {
                let result = try await world.export(volume, vmName: vmName)
                #expect(result.status == "failed")
                #expect(result.errorCode == "invalid_request")
                #expect(result.error?.contains("vm_name") == true, "\(result)")
                #expect(result.error?.contains(reason) == true, "\(result)")
            }
            #expect(try await world.mapping("migration-vol-\(volume)") == nil)
            #expect(try world.exportDirectoryEntries() == names.sorted())
        }
    }

    @Test("an invalid disk_unit_number fails invalid_request naming the field", arguments: [
        (#""disk_unit_number":-1"#, "between 0 and"),
        (#""disk_unit_number":"0""#, "not a string"),
        (#""disk_unit_number":1.5"#, "must be a whole number"),
        (#""disk_unit_number":true"#, "must be an integer"),
        (#""disk_unit_number":null"#, "not null"),
        (#""other":1"#, "is missing"),
    ])
    func invalidDiskUnitNumber(field: String, reason: String) async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            try await world.attach(volume)
            let id = try await world.enqueue("export", volume: volume, vm: otherVM,
                                             request: #"{"job_id":"j","vm_name":"v",\#(field)}"#)
            let result = try await world.finished(id)
            #expect(result.status == "failed")
            #expect(result.errorCode == "invalid_request")
            #expect(result.error?.contains("disk_unit_number") == true, "\(result)")
            #expect(result.error?.contains(reason) == true, "\(result)")
            #expect(try world.exportDirectoryEntries().isEmpty)
            #expect(try await world.db.count("SELECT count(*)::text FROM vm_export_mappings") == 0)
        }
    }

    @Test("an export the NBD server does not answer for is withdrawn and not recorded")
    func handshakeFailureWithdrawsTheEntry() async throws {
        // The backend writes a directory nbdkit does not serve: publishing succeeds, only the
        // handshake can tell that no client would ever reach the export.
        try await ExportWorld.run(backend: { appliance in
            NbdkitDirectoryBackend(exportDirectory: try appliance.scratch.makeDirectory("unserved"), port: appliance.server.port)
        }) { world in
            let volume = randomVolumeId()
            try await world.attach(volume)
            let result = try await world.export(volume)
            #expect(result.status == "failed")
            #expect(result.errorCode == "nbd_export_unknown")
            #expect(result.error?.contains("gave up after 2 attempts") == true, "\(result)")
            #expect(result.error?.contains("has no export named migration-vol-\(volume)") == true, "\(result)")
            #expect(try await world.mapping("migration-vol-\(volume)") == nil)
            #expect(try FileManager.default.contentsOfDirectory(atPath: world.appliance.scratch.child("unserved")).isEmpty)
        }
    }

    @Test("a volume that is not attached to the appliance cannot be exported")
    func notOnAppliance() async throws {
        try await ExportWorld.run { world in
            let detached = randomVolumeId()
            let result = try await world.export(detached)
            #expect(result.status == "failed")
            #expect(result.errorCode == "volume_not_on_appliance")
            #expect(result.error?.contains("volume \(detached) is not attached to the appliance: it has no device mapping") == true, "\(result)")
            #expect(result.error?.contains("attach it to the appliance first") == true)

            // Attached to another VM, with the by-id link of its appliance days still on record
            // (and still resolving here): only operation_mode tells it is not a local disk now.
            let remote = randomVolumeId()
            let stale = try world.appliance.attachVolume(remote, bytes: 4096)
            try await world.db.query("""
                INSERT INTO device_mappings (volume_id, vm_id, operation_mode, by_id_path)
                VALUES ('\(remote)', '\(otherVM)', 'remote', '\(stale.byIdPath)')
                """)
            let remoteResult = try await world.export(remote)
            #expect(remoteResult.errorCode == "volume_not_on_appliance")
            #expect(remoteResult.error?.contains("attached to VM \(otherVM) (operation_mode 'remote')") == true, "\(remoteResult)")

            #expect(try await world.db.count("SELECT count(*)::text FROM vm_export_mappings") == 0)
            #expect(try world.exportDirectoryEntries().isEmpty)
        }
    }
}
