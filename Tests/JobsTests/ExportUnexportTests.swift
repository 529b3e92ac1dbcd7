import NBD
import DevServices
import Foundation
import Operations
import TestSupport
import Testing

/// `unexport`, re-pointed devices and the remover, through the queue against real nbdkit.
@Suite("unexport operation")
struct ExportUnexportTests {
    @Test("unexport hides the export from new clients while another export keeps serving; the row becomes removed")
    func unexportWithdrawsOnlyThatExport() async throws {
        try await ExportWorld.run { world in
            let first = randomVolumeId()
            let second = randomVolumeId()
            try await world.attach(first)
            let kept = try await world.attach(second, bytes: 512 * 1024)
            try #require(try await world.export(first, disk: 0).status == "completed")
            try #require(try await world.export(second, disk: 1).status == "completed")
            let firstName = "migration-vol-\(first)"
            let secondName = "migration-vol-\(second)"
            let before = try #require(try await world.mapping(firstName))

            let result = try await world.unexport(first, exportName: firstName)
            try #require(result.status == "completed", "\(result)")
            #expect(result.response[string: "export_name"] == firstName)

            let unknown = await #expect(throws: NBDExportError.self) {
                try await NBDHandshake.check(host: "127.0.0.1", port: world.port, exportName: firstName)
            }
            #expect(unknown?.kind == .exportUnknown)
            #expect(try await world.appliance.readExport(secondName) == kept.bytes)

            let after = try #require(try await world.mapping(firstName))
            #expect(after.status == "removed")
            #expect(after.updatedAt != before.updatedAt)
            #expect(try await world.mapping(secondName)?.status == "active")
            #expect(try world.exportDirectoryEntries() == [secondName])

            // Repeating it is success; so is naming the export by the volume alone.
            #expect(try await world.unexport(first).status == "completed")
            let bySecondVolume = try await world.unexport(second)
            #expect(bySecondVolume.status == "completed")
            #expect(bySecondVolume.response[string: "export_name"] == secondName)
            #expect(try await world.mapping(secondName)?.status == "removed")
            #expect(try world.exportDirectoryEntries().isEmpty)

            // The (VM, disk) is free again, and the volume's old row comes back to life.
            let again = try await world.export(first, disk: 0)
            #expect(again.status == "completed")
            #expect(again.response[bool: "reused"] == false)
            #expect(try await world.mapping(firstName)?.status == "active")
            #expect(try await world.mapping(firstName)?.id == before.id)
        }
    }

    @Test("an unexport naming another volume's export, or a hostile name, is refused and removes nothing")
    func unexportRefusesForeignNames() async throws {
        try await ExportWorld.run { world in
            let first = randomVolumeId()
            let second = randomVolumeId()
            try await world.attach(first)
            try await world.attach(second)
            try #require(try await world.export(first, disk: 0).status == "completed")

            let foreign = try await world.unexport(second, exportName: "migration-vol-\(first)")
            #expect(foreign.status == "failed")
            #expect(foreign.errorCode == "invalid_request")
            #expect(foreign.error?.contains("belongs to volume \(first)") == true, "\(foreign)")

            for hostile in ["../x", "x]", "a\\nb"] {
                let result = try await world.unexport(second, exportName: hostile)
                #expect(result.errorCode == "invalid_request")
                #expect(result.error?.contains("export_name") == true, "\(result)")
            }
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(first)"])
            #expect(try await world.mapping("migration-vol-\(first)")?.status == "active")
        }
    }

    @Test("an unexport naming an entry volumed does not own (issue 12 item 6) is refused and the entry stays")
    func unexportRefusesNamesVolumedDoesNotOwn() async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            try await world.attach(volume)
            try #require(try await world.export(volume, disk: 0).status == "completed")
            // An operator's own file in the export directory: valid as a name, not volumed's.
            let keep = world.appliance.exports + "/keepme"
            try Data("mine".utf8).write(to: URL(fileURLWithPath: keep))

            for foreign in ["keepme", "migration-vol-\(volume).bak", "MIGRATION-VOL-\(volume)"] {
                let result = try await world.unexport(volume, exportName: foreign)
                #expect(result.status == "failed")
                #expect(result.errorCode == "invalid_request")
                #expect(result.error?.contains("field 'export_name' must be this volume's own export name migration-vol-\(volume)") == true,
                        "\(result)")
            }
            #expect(try world.exportDirectoryEntries() == ["keepme", "migration-vol-\(volume)"])
            #expect(try fileBytes(keep) == Data("mine".utf8))
            #expect(try await world.mapping("migration-vol-\(volume)")?.status == "active")
        }
    }

    @Test("after a reboot re-points the by-id link, the same export name serves the new device")
    func rebootRepointsTheDevice() async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            let before = try await world.attach(volume, bytes: 256 * 1024)
            let name = "migration-vol-\(volume)"
            try #require(try await world.export(volume).status == "completed")
            #expect(try await world.appliance.readExport(name) == before.bytes)

            // udev re-creates the link towards the device's new node (the same disk, so the same
            // size: export refuses a link to anything else); nothing in volumed changes.
            let after = try world.appliance.attachVolume(volume, bytes: 256 * 1024)
            #expect(after.byIdPath == before.byIdPath)
            #expect(after.bytes != before.bytes)
            #expect(try await world.appliance.readExport(name) == after.bytes)

            let again = try await world.export(volume)
            #expect(again.response[bool: "reused"] == true)
            #expect(try await NBDHandshake.check(host: "127.0.0.1", port: world.port, exportName: name) == 256 * 1024)
            #expect(try await world.mapping(name)?.devicePath == before.byIdPath)
        }
    }

    @Test("BackendExportRemover takes a volume's exports down and marks them removed, leaving other volumes alone")
    func removerRemovesAVolumesExports() async throws {
        try await ExportWorld.run { world in
            let doomed = randomVolumeId()
            let other = randomVolumeId()
            try await world.attach(doomed)
            let kept = try await world.attach(other)
            try #require(try await world.export(doomed, disk: 0).status == "completed")
            try #require(try await world.export(other, disk: 1).status == "completed")

            // The worker's `detach` stands in for a forced detach calling the remover.
            let detach = try await world.finished(world.enqueue("detach", volume: doomed, request: "{}"))
            try #require(detach.status == "completed", "\(detach)")

            let doomedName = "migration-vol-\(doomed)"
            #expect(try await world.mapping(doomedName)?.status == "removed")
            let unknown = await #expect(throws: NBDExportError.self) {
                try await NBDHandshake.check(host: "127.0.0.1", port: world.port, exportName: doomedName)
            }
            #expect(unknown?.kind == .exportUnknown)
            #expect(try await world.mapping("migration-vol-\(other)")?.status == "active")
            #expect(try await world.appliance.readExport("migration-vol-\(other)") == kept.bytes)
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(other)"])
        }
    }
}
