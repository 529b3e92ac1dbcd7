import NBD
import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// `volumed reconcile`: one test per troubleshooting case of the original daemon, through the
/// public `Reconciler`, against real PostgreSQL, the simulator's hot-plug and a real export
/// directory; each asserts on the tables, the export entries and what CloudStack saw.
@Suite("reconcile")
struct ReconcileTests {
    @Test("mapping not found for volume: a disk attached to the appliance outside volumed is adopted")
    func adoptsAVolumeAttachedOutsideVolumed() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.harness.cloudVolume()
            try await world.harness.cloudAttach(volumeId, to: world.appliance)

            let report = try await world.reconcile()

            #expect(ReconcileReport.keys(report.planned) == ["adopt_volume \(volumeId)"])
            #expect(ReconcileReport.keys(report.applied) == ["adopt_volume \(volumeId)"])
            #expect(report.unresolved.isEmpty, "\(report.unresolved)")
            let simulated = try #require(await world.harness.simulator.state().volume(volumeId))
            #expect(try await world.harness.mapping(volumeId) == MappingRow(
                vmId: world.appliance, mode: "appliance", cloudStackDeviceId: simulated.deviceid.map(Int32.init),
                byIdPath: try world.link(volumeId), devicePath: world.harness.backingFile(volumeId), sizeBytes: GiB))
            #expect(try await world.db.scalar("""
                SELECT name || ' ' || size_bytes || ' ' || state || ' ' || coalesce(created_by_operation::text, 'adopted')
                FROM volumes WHERE volume_id = '\(volumeId)'
                """) == "\(simulated.name) \(GiB) \(simulated.state) adopted")
            // CloudStack saw only the attach made outside volumed; reconcile changed nothing there.
            #expect(await world.harness.sideEffects(volumeId) == .init(createVolume: 1, attachVolume: 1))

            let again = try await world.reconcile()
            #expect(again.planned.isEmpty && again.unresolved.isEmpty, "\(again.planned) \(again.unresolved)")
        }
    }

    @Test("volume already attached: a correct mapping is left exactly as it is")
    func leavesACorrectMappingAlone() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            try await world.export(volumeId)
            let before = try await world.tables()
            let requestsBefore = await world.harness.simulator.state().requestCounts

            let report = try await world.reconcile()

            #expect(report.planned.isEmpty && report.applied.isEmpty && report.unresolved.isEmpty,
                    "\(report.planned) \(report.unresolved)")
            #expect(report.volumesChecked == 1)
            #expect(try await world.tables() == before)
            #expect(try await world.entries() == ["migration-vol-\(volumeId)": try world.link(volumeId)])
            let requestsAfter = await world.harness.simulator.state().requestCounts
            for command in ["attachVolume", "detachVolume", "createVolume", "deleteVolume"] {
                #expect(requestsAfter[command] == requestsBefore[command], "\(command)")
            }
        }
    }

    @Test("volume already attached, but CloudStack shows it detached: the stale mapping and its exports are removed")
    func removesTheMappingOfAVolumeDetachedOutsideVolumed() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            try await world.export(volumeId)
            try await world.detachOutsideVolumed(volumeId)

            let report = try await world.reconcile()

            #expect(ReconcileReport.keys(report.applied) == ["remove_stale_mapping \(volumeId)"])
            #expect(report.unresolved.isEmpty, "\(report.unresolved)")
            #expect(try await world.harness.mapping(volumeId) == nil)
            #expect(try await world.exportStatus(volumeId) == "removed")
            #expect(try await world.entries().isEmpty)
            #expect(await world.harness.sideEffects(volumeId) == .init(createVolume: 1, attachVolume: 1, detachVolume: 1))
        }
    }

    @Test("export pointing to the wrong device: the entry is pointed back at the volume's by-id link")
    func fixesAnExportPointingAtTheWrongDevice() async throws {
        try await ReconcileWorld.run(serveExports: true) { world in
            let volumeId = try await world.attachedThroughVolumed()
            let elsewhere = try world.newDevice("elsewhere.img", bytes: 4096)
            try await world.export(volumeId, entryTarget: elsewhere)
            let nbdkit = try #require(world.nbdkit)
            let exportName = "migration-vol-\(volumeId)"
            #expect(try await NBDHandshake.check(host: nbdkit.host, port: nbdkit.port, exportName: exportName) == 4096)

            let report = try await world.reconcile()

            #expect(ReconcileReport.keys(report.applied) == ["recreate_export \(volumeId)"])
            #expect(report.unresolved.isEmpty, "\(report.unresolved)")
            #expect(try await world.entries() == [exportName: try world.link(volumeId)])
            // nbdkit now serves the volume itself (1 GiB), not the 4 KiB stray file.
            #expect(try await NBDHandshake.check(host: nbdkit.host, port: nbdkit.port, exportName: exportName) == UInt64(GiB))
            #expect(try await world.exportStatus(volumeId) == "active")
        }
    }

    @Test("a mapping whose by-id link now resolves to another device follows it")
    func updatesTheDevicePathAfterTheLinkMoved() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            let moved = try world.newDevice("after-reboot.img")
            try world.repointLink(volumeId, to: moved)

            let report = try await world.reconcile()

            #expect(ReconcileReport.keys(report.applied) == ["update_device_path \(volumeId)"])
            #expect(report.applied.first?.message.contains("device_path \(world.harness.backingFile(volumeId)) → \(moved)") == true,
                    "\(report.applied)")
            let mapping = try #require(try await world.harness.mapping(volumeId))
            #expect(mapping.devicePath == moved)
            #expect(mapping.byIdPath == (try world.link(volumeId)))
            #expect(mapping.mode == "appliance" && mapping.vmId == world.appliance)
        }
    }

    @Test("a by-id link re-pointed at a file that is not the attached disk is reported, never recorded (issue 12 item 5)")
    func doesNotFollowALinkToAnotherFile() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            let before = try #require(try await world.harness.mapping(volumeId))
            // A harmless file of ours standing in for /etc/shadow: not the attached disk's size.
            let secret = try world.newDevice("shadow-stand-in", bytes: 4096)
            try world.repointLink(volumeId, to: secret)

            let report = try await world.reconcile()

            #expect(report.applied.isEmpty, "\(report.applied)")
            let finding = try #require(report.findings(.checkFailed).first { $0.volumeId == volumeId }, "\(report.unresolved)")
            #expect(finding.message.contains("4096 bytes") && finding.message.contains("refusing"), "\(finding.message)")
            let after = try #require(try await world.harness.mapping(volumeId))
            #expect(after.devicePath == before.devicePath && after.devicePath != secret)
        }
    }

    @Test("a CloudStack volume named like a failed create and owned by nothing is reported as untracked (issue 12 item 7)")
    func reportsVolumesAFailedCreateMayHaveLeft() async throws {
        try await ReconcileWorld.run { world in
            // A create that ended without a volume (cancelled here; failed alike).
            let create = try await world.harness.enqueue("create", request: HandlerCreateTests.request(name: "lost-reply", size: GiB))
            _ = try await world.db.query("SELECT volume_operation_cancel('\(create.uuidString.lowercased())')")
            // What its lost createVolume reply left in CloudStack, and a volume of another name.
            let (orphan, job) = try await world.harness.client.createVolume(
                name: "lost-reply", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            _ = try await world.harness.client.waitForJob(jobId: job, timeout: .seconds(10))
            let unrelated = try await world.harness.cloudVolume()

            let report = try await world.reconcile()

            let untracked = report.findings(.untrackedVolume)
            #expect(untracked.map(\.volumeId) == [orphan], "\(report.unresolved)")
            #expect(untracked.first?.message.contains("lost-reply") == true)
            #expect(!report.unresolved.contains { $0.volumeId == unrelated })
            #expect(report.applied.isEmpty)
        }
    }

    @Test("what reconcile cannot settle is reported, and the tables are left alone")
    func reportsWhatItCannotRepair() async throws {
        try await ReconcileWorld.run { world in
            // volumes lists a volume CloudStack never had (deleted and expunged outside volumed).
            let vanished = randomVolumeId()
            try await world.db.query("INSERT INTO volumes (volume_id, name, size_bytes, state) VALUES ('\(vanished)', 'gone', \(GiB), 'Ready')")
            // The mapping says appliance and CloudStack agrees, but the by-id link is gone.
            let linkless = try await world.attachedThroughVolumed()
            try FileManager.default.removeItem(atPath: try world.link(linkless))
            // Recorded on one VM, attached to another in CloudStack.
            let moved = try await world.harness.cloudVolume()
            try await world.harness.cloudAttach(moved, to: SimulatorConfiguration.customerVMID)
            try await world.db.query("""
                INSERT INTO device_mappings (volume_id, vm_id, operation_mode) VALUES ('\(moved)', '\(otherVM)', 'remote')
                """)
            let before = try await world.tables()

            let report = try await world.reconcile()

            #expect(report.planned.isEmpty, "\(report.planned)")
            #expect(report.findings(.volumeUnknownToCloudStack).map(\.volumeId) == [vanished])
            #expect(report.findings(.byIdLinkMissing).map(\.volumeId) == [linkless])
            #expect(report.findings(.attachedToOtherVM).map(\.volumeId) == [moved])
            #expect(report.needsAttention.count == 3, "\(report.unresolved)")
            let elsewhere = try #require(report.findings(.attachedToOtherVM).first?.message)
            #expect(elsewhere.contains("on VM \(otherVM), but CloudStack shows it attached to VM \(SimulatorConfiguration.customerVMID)"), "\(elsewhere)")
            #expect(try await world.tables() == before)
        }
    }

    @Test("a dry run plans every repair and changes nothing; the real run then applies exactly that plan")
    func aDryRunChangesNothing() async throws {
        try await ReconcileWorld.run { world in
            let outside = try await world.harness.cloudVolume()
            try await world.harness.cloudAttach(outside, to: world.appliance)
            let detached = try await world.attachedThroughVolumed()
            try await world.export(detached, disk: 0)
            try await world.detachOutsideVolumed(detached)
            let relinked = try await world.attachedThroughVolumed()
            try world.repointLink(relinked, to: try world.newDevice("relinked.img"))
            let misexported = try await world.attachedThroughVolumed()
            try await world.export(misexported, disk: 1, entryTarget: try world.newDevice("stray.img", bytes: 4096))
            let tablesBefore = try await world.tables()
            let entriesBefore = try await world.entries()
            let requestsBefore = await world.harness.simulator.state().requestCounts

            let plan = try await world.reconcile(dryRun: true)

            #expect(plan.dryRun)
            #expect(ReconcileReport.keys(plan.planned) == [
                "adopt_volume \(outside)", "recreate_export \(misexported)", "remove_stale_mapping \(detached)",
                "update_device_path \(relinked)",
            ].sorted())
            #expect(plan.applied.isEmpty)
            #expect(try await world.tables() == tablesBefore)
            #expect(try await world.entries() == entriesBefore)
            let requestsAfter = await world.harness.simulator.state().requestCounts
            for command in ["attachVolume", "detachVolume", "createVolume", "deleteVolume"] {
                #expect(requestsAfter[command] == requestsBefore[command], "\(command)")
            }

            let run = try await world.reconcile()
            #expect(ReconcileReport.keys(run.applied) == ReconcileReport.keys(plan.planned))
            #expect(run.unresolved.isEmpty, "\(run.unresolved)")
            #expect(try await world.tables() != tablesBefore)
        }
    }

    @Test("a volume with a pending or executing operation is skipped and reported busy")
    func skipsBusyVolumes() async throws {
        try await ReconcileWorld.run { world in
            // Both would be stale mappings (detached outside volumed), but an operation holds each.
            let pending = try await world.attachedThroughVolumed()
            let executing = try await world.attachedThroughVolumed()
            for volumeId in [pending, executing] { try await world.detachOutsideVolumed(volumeId) }
            _ = try await world.harness.enqueue("detach", volume: pending)
            let running = try await world.harness.enqueue("detach", volume: executing)
            try await world.db.query("""
                UPDATE volume_operations SET \(sqlClaim(worker: "another-worker", lease: "1 hour")) WHERE id = '\(running)'
                """)
            let before = try await world.tables()

            let report = try await world.reconcile()

            #expect(report.planned.isEmpty, "\(report.planned)")
            #expect(Set(report.findings(.busy).compactMap(\.volumeId)) == [pending, executing])
            #expect(report.needsAttention.isEmpty, "\(report.unresolved)")
            #expect(try await world.tables() == before)
        }
    }

    @Test("two reconcilers at once: one runs, the other is told another reconcile is running")
    func runsOneReconcilerAtATime() async throws {
        // Every CloudStack answer takes 300 ms, so the first pass holds the lock while the second tries.
        try await ReconcileWorld.run(faults: SimulatorFaults(latencyMs: 300)) { world in
            let volumeId = try await world.harness.cloudVolume()
            try await world.harness.cloudAttach(volumeId, to: world.appliance)
            let listsBefore = await world.harness.simulator.state().requestCounts["listVolumes"] ?? 0

            async let first = outcome { try await world.reconcile() }
            async let second = outcome { try await world.reconcile() }
            let results = await [first, second]

            let reports = results.compactMap { try? $0.get() }
            let refusals = results.compactMap { result -> ReconcileAlreadyRunning? in
                guard case .failure(let error) = result else { return nil }
                return error as? ReconcileAlreadyRunning
            }
            #expect(reports.count == 1 && refusals.count == 1, "\(results)")
            #expect(refusals.first?.description.contains("another reconcile is running") == true)
            #expect(reports.first.map { ReconcileReport.keys($0.applied) } == ["adopt_volume \(volumeId)"])
            #expect(try await world.harness.mapping(volumeId)?.mode == "appliance")
            // One pass's CloudStack reads: the volume by id and the appliance's volumes.
            let listsAfter = await world.harness.simulator.state().requestCounts["listVolumes"] ?? 0
            #expect(listsAfter - listsBefore == 1)
        }
    }
}

/// What `body` returned or threw.
func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
