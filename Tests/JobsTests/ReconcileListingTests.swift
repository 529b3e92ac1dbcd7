import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Synchronization
import Testing

/// A reconcile pass reads CloudStack's volumes as one paged listing, not one `listVolumes`
/// per volume, and decides exactly as before: a volume the listing lacks is asked for alone.
@Suite("reconcile listing")
struct ReconcileListingTests {
    @Test("ten recorded volumes, pages of three: four pages, the appliance's disks, and one lookup for the deleted volume")
    func readsCloudStackInPages() async throws {
        let calls = try await Self.passOverTenVolumes(faults: SimulatorFaults())
        // 11 volumes list (9 data volumes, 2 ROOT): pages of 3, 3, 3, 2; then the appliance's
        // disks; then the deleted volume, which no page lists, by its id.
        #expect(calls == 6)
    }

    @Test("pages that miss volumes and repeat others (MySQL's order of same-second rows) change no decision")
    func pagesThatShiftDecideTheSame() async throws {
        var faults = SimulatorFaults()
        faults.shuffleSameSecondVolumes = true
        let calls = try await Self.passOverTenVolumes(faults: faults)
        #expect(calls >= 6)
    }

    @Test("two recorded volumes among twelve, pages of three: the first page, then the two by id, not three more pages")
    func asksForAFewVolumesByIdRatherThanReadingEveryPage() async throws {
        try await ReconcileWorld.run(defaultPageSize: 3) { world in
            var volumes: [String] = []
            for _ in 0..<10 { volumes.append(try await world.harness.cloudVolume()) }
            // The two oldest: the first page (newest first) lists neither.
            for volumeId in volumes.prefix(2) {
                try await world.db.query("""
                    INSERT INTO volumes (volume_id, name, size_bytes, state) VALUES ('\(volumeId)', 'recorded', \(GiB), 'Ready')
                    """)
            }
            try await world.harness.client.deleteVolume(id: volumes[0])
            let before = await world.harness.simulator.state().requestCounts["listVolumes", default: 0]

            let report = try await world.reconcile()

            let calls = await world.harness.simulator.state().requestCounts["listVolumes", default: 0] - before
            // 11 volumes list: the first page, then 3 more pages or 2 volumes by id; then the appliance's disks.
            #expect(calls == 4)
            #expect(report.applied.isEmpty)
            #expect(report.unresolved.map { "\($0.kind.rawValue) \($0.volumeId ?? "-")" } == ["volume_unknown_to_cloudstack \(volumes[0])"])
        }
    }

    /// Ten volumes recorded in `volumes`: one deleted in CloudStack since, one attached to the
    /// appliance outside volumed. Checks the pass's decisions; returns its `listVolumes` calls.
    private static func passOverTenVolumes(faults: SimulatorFaults) async throws -> Int {
        let calls = Mutex(0)
        try await ReconcileWorld.run(faults: faults, defaultPageSize: 3) { world in
            var volumes: [String] = []
            for _ in 0..<10 { volumes.append(try await world.harness.cloudVolume()) }
            for volumeId in volumes {
                try await world.db.query("""
                    INSERT INTO volumes (volume_id, name, size_bytes, state) VALUES ('\(volumeId)', 'recorded', \(GiB), 'Ready')
                    """)
            }
            let (deleted, adopted) = (volumes[0], volumes[1])
            try await world.harness.client.deleteVolume(id: deleted)
            try await world.harness.cloudAttach(adopted, to: world.appliance)
            let before = await world.harness.simulator.state().requestCounts["listVolumes", default: 0]

            let report = try await world.reconcile()

            let after = await world.harness.simulator.state().requestCounts["listVolumes", default: 0]
            calls.withLock { $0 = after - before }
            #expect(report.volumesChecked == 10)
            #expect(ReconcileReport.keys(report.applied) == ["adopt_volume \(adopted)"])
            #expect(report.unresolved.map { "\($0.kind.rawValue) \($0.volumeId ?? "-")" } == ["volume_unknown_to_cloudstack \(deleted)"])
        }
        return calls.withLock { $0 }
    }
}
