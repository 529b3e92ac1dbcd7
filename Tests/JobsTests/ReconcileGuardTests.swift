import Foundation
@testable import Operations
@testable import CloudStack
import TestSupport
import Testing

/// The guards that keep a repair from racing a worker: between the snapshot and the repair's
/// transaction, an operation on the volume or a change to its row cancels the repair.
@Suite("reconcile guards")
struct ReconcileGuardTests {
    @Test("a repair is not applied when an operation on its volume finished after the snapshot")
    func anOperationAfterTheSnapshotCancelsTheRepair() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            try await world.detachOutsideVolumed(volumeId)
            let (reconciler, repair, since) = try await Self.planStaleRemoval(world, volumeId)

            // A worker runs (and finishes) an operation on the volume that leaves its mapping row as it was.
            let id = try await world.harness.enqueue("detach", volume: volumeId)
            try await world.db.query("""
                UPDATE volume_operations SET \(sqlClaim()) WHERE id = '\(id)'
                """)
            try await world.db.query("UPDATE volume_operations SET status = 'completed', \(sqlProof()) WHERE id = '\(id)'")

            guard case .changed(let reason) = await reconciler.apply(repair, since: since) else {
                Issue.record("the repair was applied although an operation finished after the snapshot")
                return
            }
            #expect(reason.contains("finished after reconcile looked"), "\(reason)")
            #expect(try await world.harness.mapping(volumeId) != nil)
        }
    }

    @Test("a repair is not applied when its row changed after the snapshot, and is applied when nothing did")
    func aChangedRowCancelsTheRepair() async throws {
        try await ReconcileWorld.run { world in
            let changed = try await world.attachedThroughVolumed()
            let untouched = try await world.attachedThroughVolumed()
            for volumeId in [changed, untouched] { try await world.detachOutsideVolumed(volumeId) }
            let (reconciler, repair, since) = try await Self.planStaleRemoval(world, changed)
            let (_, control, _) = try await Self.planStaleRemoval(world, untouched)

            try await world.db.query("UPDATE device_mappings SET vm_id = '\(otherVM)' WHERE volume_id = '\(changed)'")

            guard case .changed = await reconciler.apply(repair, since: since) else {
                Issue.record("the repair was applied to a row that changed after the snapshot")
                return
            }
            #expect(try await world.harness.mapping(changed)?.vmId == otherVM)
            guard case .applied = await reconciler.apply(control, since: since) else {
                Issue.record("the control repair was not applied")
                return
            }
            #expect(try await world.harness.mapping(untouched) == nil)
        }
    }

    /// Snapshot and plan, as a pass does before repairing; returns the stale-mapping removal of `volumeId`.
    private static func planStaleRemoval(_ world: ReconcileWorld, _ volumeId: String) async throws -> (Reconciler, PlannedRepair, Date) {
        let reconciler = world.reconciler()
        let snapshot = try await reconciler.takeSnapshot()
        let repairs = ReconcilePlanner(snapshot: snapshot, applianceVMId: world.appliance).plan().repairs
        let repair = try #require(repairs.first { $0.action.kind == .removeStaleMapping && $0.action.volumeId == volumeId })
        return (reconciler, repair, snapshot.since)
    }
}
