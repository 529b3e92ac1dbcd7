import NBD
import Devices
import DevServices
import Foundation
import Operations
import TestSupport
import Testing

/// Start-up reconciliation of the nbdkit export directory with `vm_export_mappings`.
@Suite("export reconciler")
struct ExportReconcilerTests {
    @Test("stray entries are removed, missing or wrong entries recreated, /dev/vdX rows rewritten to by-id")
    func reconcilesTheApplianceExports() async throws {
        try await ExportWorld.run { world in
            // An active export whose entry was lost (e.g. a tmpfs export directory after a reboot).
            let lost = randomVolumeId()
            let lostDisk = try await world.attach(lost)
            try await insertActiveMapping(world, volume: lost, disk: 0, devicePath: lostDisk.byIdPath)

            // An active export whose entry points at the wrong device.
            let wrong = randomVolumeId()
            let wrongDisk = try await world.attach(wrong)
            try await insertActiveMapping(world, volume: wrong, disk: 1, devicePath: wrongDisk.byIdPath)
            let elsewhere = try world.appliance.scratch.randomFile("elsewhere", count: 4096)
            try makeSymlink(world.appliance.exports + "/migration-vol-\(wrong)", to: elsewhere.path)

            // A row from before the by-id migration: the kernel name, and no entry.
            let legacy = randomVolumeId()
            let legacyDisk = try await world.attach(legacy)
            try await insertActiveMapping(world, volume: legacy, disk: 2, devicePath: "/dev/vdb")

            // Entries nothing accounts for: an unknown volume's, and a removed export's.
            let strayVolume = randomVolumeId()
            try makeSymlink(world.appliance.exports + "/migration-vol-\(strayVolume)", to: elsewhere.path)
            let removedVolume = randomVolumeId()
            let removedDisk = try await world.attach(removedVolume)
            try await insertActiveMapping(world, volume: removedVolume, disk: 3, devicePath: removedDisk.byIdPath, status: "removed")
            try makeSymlink(world.appliance.exports + "/migration-vol-\(removedVolume)", to: removedDisk.byIdPath)

            // Another appliance's export: not this host's to recreate.
            let foreign = randomVolumeId()
            try await world.db.query("""
                INSERT INTO device_mappings (volume_id, vm_id, operation_mode, by_id_path)
                VALUES ('\(foreign)', '\(otherVM)', 'appliance', '/dev/disk/by-id/virtio-elsewhere')
                """)
            try await insertActiveMapping(world, volume: foreign, disk: 4, devicePath: "/dev/disk/by-id/virtio-elsewhere")

            let reconciler = exportReconciler(world, applianceVMId: applianceVM)
            let report = try await reconciler.reconcile()

            #expect(report.failures.isEmpty, "\(report.lines)")
            #expect(Set(report.removed) == ["migration-vol-\(strayVolume)", "migration-vol-\(removedVolume)"])
            #expect(Set(report.recreated) == ["migration-vol-\(lost)", "migration-vol-\(wrong)", "migration-vol-\(legacy)"])
            #expect(report.rewritten == ["migration-vol-\(legacy)"])
            #expect(report.lines.contains("rewrote migration-vol-\(legacy) device_path /dev/vdb → \(legacyDisk.byIdPath)"))
            #expect(report.description == "exports: 2 removed, 3 recreated, 1 rewritten to by-id, 0 withdrawn, 0 failed")

            #expect(try await world.mapping("migration-vol-\(legacy)")?.devicePath == legacyDisk.byIdPath)
            #expect(try await world.mapping("migration-vol-\(foreign)")?.devicePath == "/dev/disk/by-id/virtio-elsewhere")
            #expect(try world.exportDirectoryEntries()
                        == ["migration-vol-\(lost)", "migration-vol-\(wrong)", "migration-vol-\(legacy)"].sorted())
            #expect(try await world.appliance.readExport("migration-vol-\(lost)") == lostDisk.bytes)
            #expect(try await world.appliance.readExport("migration-vol-\(wrong)") == wrongDisk.bytes)
            #expect(try await world.appliance.readExport("migration-vol-\(legacy)") == legacyDisk.bytes)
            for gone in [strayVolume, removedVolume] {
                let error = await #expect(throws: NBDExportError.self) {
                    try await NBDHandshake.check(host: "127.0.0.1", port: world.port, exportName: "migration-vol-\(gone)")
                }
                #expect(error?.kind == .exportUnknown)
            }

            // A second pass finds nothing to do.
            let again = try await reconciler.reconcile()
            #expect(again.removed.isEmpty && again.recreated.isEmpty && again.rewritten.isEmpty && again.failures.isEmpty,
                    "\(again.lines)")
        }
    }

    @Test("without a recorded by-id path the row is rewritten to the link udev made; an export that cannot be recreated is reported")
    func fallsBackToTheResolver() async throws {
        try await ExportWorld.run { world in
            // No device mapping at all (a row older than device_mappings): the by-id resolver finds the link.
            let volume = randomVolumeId()
            let disk = try world.appliance.attachVolume(volume, bytes: 128 * 1024)
            try await insertActiveMapping(world, volume: volume, disk: 0, devicePath: "/dev/vdd")
            // A row whose device is gone: publishing fails, the rest goes on.
            let gone = randomVolumeId()
            try await insertActiveMapping(world, volume: gone, disk: 1, devicePath: world.appliance.byId + "/virtio-missing")

            let reconciler = exportReconciler(world, applianceVMId: nil)
            let report = try await reconciler.reconcile()

            #expect(report.rewritten == ["migration-vol-\(volume)"])
            #expect(report.recreated == ["migration-vol-\(volume)"])
            #expect(report.failures.count == 1)
            #expect(report.failures.first?.contains("could not recreate migration-vol-\(gone)") == true, "\(report.failures)")
            #expect(try await world.mapping("migration-vol-\(volume)")?.devicePath == disk.byIdPath)
            #expect(try await world.appliance.readExport("migration-vol-\(volume)") == disk.bytes)
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(volume)"])
        }
    }

    @Test("an export whose by-id link was re-pointed after it was published is withdrawn, and served again once the link is right")
    func withdrawsAnExportWhoseLinkNoLongerLeadsToTheVerifiedDisk() async throws {
        try await ExportWorld.run { world in
            let volume = randomVolumeId()
            let disk = try await world.attach(volume)
            try await insertActiveMapping(world, volume: volume, disk: 0, devicePath: disk.byIdPath)
            let reconciler = exportReconciler(world, applianceVMId: applianceVM)
            let first = try await reconciler.reconcile()
            #expect(first.recreated == ["migration-vol-\(volume)"] && first.failures.isEmpty, "\(first.lines)")
            #expect(try await world.appliance.readExport("migration-vol-\(volume)") == disk.bytes)

            // Someone with write access to the by-id directory re-points the link at another
            // file (a stand-in for /etc/shadow): nbdkit would follow it on the next connect.
            let linkTarget = try FileManager.default.destinationOfSymbolicLink(atPath: disk.byIdPath)
            let secret = try world.appliance.scratch.randomFile("shadow-stand-in", count: 4096)
            try FileManager.default.removeItem(atPath: disk.byIdPath)
            try makeSymlink(disk.byIdPath, to: secret.path)

            let dry = try await reconciler.reconcile(dryRun: true)
            #expect(dry.withdrawn == ["migration-vol-\(volume)"], "\(dry.lines)")
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(volume)"])

            let second = try await reconciler.reconcile()
            #expect(second.withdrawn == ["migration-vol-\(volume)"], "\(second.lines)")
            #expect(second.recreated.isEmpty)
            #expect(second.failures.count == 1 && second.failures[0].contains("4096 bytes"), "\(second.failures)")
            #expect(try world.exportDirectoryEntries().isEmpty)
            let error = await #expect(throws: NBDExportError.self) {
                try await NBDHandshake.check(host: "127.0.0.1", port: world.port, exportName: "migration-vol-\(volume)")
            }
            #expect(error?.kind == .exportUnknown)
            // The row stays active: the export is the orchestrator's, only its serving stopped.
            #expect(try await world.mapping("migration-vol-\(volume)")?.devicePath == disk.byIdPath)

            // udev puts the link back: the next pass serves the verified disk again.
            try FileManager.default.removeItem(atPath: disk.byIdPath)
            try makeSymlink(disk.byIdPath, to: linkTarget)
            let third = try await reconciler.reconcile()
            #expect(third.recreated == ["migration-vol-\(volume)"] && third.failures.isEmpty, "\(third.lines)")
            #expect(try await world.appliance.readExport("migration-vol-\(volume)") == disk.bytes)
        }
    }

    @Test("an entry of a volume with an executing operation is left alone until the operation is over")
    func leavesTheExportsOfABusyVolumeAlone() async throws {
        try await ExportWorld.run { world in
            // An export being published: the entry exists, its row commits when the operation finishes.
            let volume = randomVolumeId()
            let disk = try await world.attach(volume)
            try makeSymlink(world.appliance.exports + "/migration-vol-\(volume)", to: disk.byIdPath)
            // Not claimable by the test's worker (run_after in an hour); executing as another worker's.
            let id = try await world.db.scalar("""
                INSERT INTO volume_operations (type, volume_id, vm_id, request, run_after)
                VALUES ('export', '\(volume)', '\(otherVM)', '{}', now() + interval '1 hour') RETURNING id::text
                """)!
            try await world.db.query("""
                UPDATE volume_operations SET \(sqlClaim(worker: "another-worker", lease: "1 hour")) WHERE id = '\(id)'
                """)
            let reconciler = exportReconciler(world, applianceVMId: applianceVM)

            let busy = try await reconciler.reconcile()
            #expect(busy.busy == [volume])
            #expect(busy.removed.isEmpty && busy.changes.isEmpty, "\(busy.lines)")
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(volume)"])

            // The operation failed without a row: now the entry is a stray.
            try await world.db.query("""
                UPDATE volume_operations SET status = 'failed', error = 'x', error_code = 'x', \(sqlProof()) WHERE id = '\(id)'
                """)
            let after = try await reconciler.reconcile()
            #expect(after.removed == ["migration-vol-\(volume)"])
            #expect(try world.exportDirectoryEntries().isEmpty)
        }
    }

    @Test("a dry run reports what it would change and changes nothing")
    func aDryRunChangesNothing() async throws {
        try await ExportWorld.run { world in
            let lost = randomVolumeId()
            let lostDisk = try await world.attach(lost)
            try await insertActiveMapping(world, volume: lost, disk: 0, devicePath: lostDisk.byIdPath)
            let legacy = randomVolumeId()
            try await world.attach(legacy)
            try await insertActiveMapping(world, volume: legacy, disk: 1, devicePath: "/dev/vdb")
            let stray = randomVolumeId()
            try makeSymlink(world.appliance.exports + "/migration-vol-\(stray)", to: lostDisk.byIdPath)
            let reconciler = exportReconciler(world, applianceVMId: applianceVM)

            let plan = try await reconciler.reconcile(dryRun: true)

            #expect(plan.dryRun)
            #expect(plan.removed == ["migration-vol-\(stray)"])
            #expect(Set(plan.recreated) == ["migration-vol-\(lost)", "migration-vol-\(legacy)"])
            #expect(plan.rewritten == ["migration-vol-\(legacy)"])
            #expect(plan.lines.allSatisfy { $0.hasPrefix("would ") }, "\(plan.lines)")
            #expect(try world.exportDirectoryEntries() == ["migration-vol-\(stray)"])
            #expect(try await world.mapping("migration-vol-\(legacy)")?.devicePath == "/dev/vdb")

            let run = try await reconciler.reconcile()
            #expect(run.removed == plan.removed && Set(run.recreated) == Set(plan.recreated) && run.rewritten == plan.rewritten)
        }
    }

    /// The reconciler of the appliance `applianceVMId` (nil: every row is this host's).
    private func exportReconciler(_ world: ExportWorld, applianceVMId: String?) -> ExportReconciler {
        ExportReconciler(
            backend: world.backend, resolver: ByIdResolver(directory: world.appliance.byId, allowsRegularFiles: true),
            applianceVMId: applianceVMId, database: world.db.client, logger: testLogger)
    }

    private func insertActiveMapping(
        _ world: ExportWorld, volume: String, disk: Int, devicePath: String, status: String = "active"
    ) async throws {
        try await world.db.query("""
            INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status)
            VALUES ('\(otherVM)', \(disk), '\(volume)', 'migration-vol-\(volume)', '\(devicePath)', \(world.port), 'job', 'vm', '\(status)')
            """)
    }
}
