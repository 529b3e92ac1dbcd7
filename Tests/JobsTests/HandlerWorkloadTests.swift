import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

@Suite struct HandlerWorkloadTests {
    /// 100 operations (25 creates, then attach/detach/delete sequences on each volume) while
    /// CloudStack fails one call in five: every operation ends, and what volumed recorded is
    /// exactly what CloudStack holds.
    @Test func aMixedWorkloadUnderInjectedFailuresLeavesTablesEqualToCloudStack() async throws {
        try await HandlerHarness.with(faults: SimulatorFaults(failRate: 0.2), maxDataVolumesPerVM: 64) { h in
            let worker = h.startWorker { $0.concurrency = 8; $0.claimBatchSize = 8 }
            let offering = SimulatorConfiguration.customDiskOfferingID
            let zone = SimulatorConfiguration.zoneID
            var creates: [UUID] = []
            for index in 0..<25 {
                creates.append(try await h.enqueue(
                    "create", request: #"{"name":"load-\#(index)","size":\#(GiB),"disk_offering_id":"\#(offering)","zone_id":"\#(zone)"}"#,
                    maxAttempts: 20))
            }
            var volumes: [String] = []
            for id in creates {
                let row = try await h.finished(id, timeout: .seconds(60))
                #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
                if let volumeId = row.volumeId { volumes.append(volumeId) }
            }

            let customer = SimulatorConfiguration.customerVMID
            var later: [UUID] = []
            for (index, volumeId) in volumes.enumerated() {
                let steps: [(String, String?)] = switch index % 3 {
                case 0: [("attach", h.appliance), ("detach", nil), ("delete", nil)]
                case 1: [("attach", customer), ("detach", nil), ("attach", h.appliance)]
                default: [("attach", h.appliance), ("detach", nil), ("attach", customer)]
                }
                for (type, vm) in steps {
                    later.append(try await h.enqueue(type, volume: volumeId, vm: vm, maxAttempts: 20))
                }
            }
            #expect(creates.count + later.count == 100)
            var failures: [String] = []
            for id in later {
                let row = try await h.finished(id, timeout: .seconds(60))
                if row.status != "completed" { failures.append("\(row.errorCode ?? ""): \(row.error ?? "")") }
            }
            try await worker.stop()
            #expect(failures.isEmpty, "\(failures)")

            #expect(try await h.db.count("SELECT count(*)::text FROM volume_operations WHERE status IN ('pending', 'executing')") == 0)
            let state = await h.simulator.state()
            let cloudVolumes = Set(state.volumes.filter { $0.type == "DATADISK" }.map(\.id))
            let recordedVolumes = Set(try await h.db.query("SELECT volume_id FROM volumes WHERE state <> 'Deleted'").compactMap { $0 })
            #expect(cloudVolumes == recordedVolumes)
            let cloudAttachments = Set(state.volumes.filter { $0.type == "DATADISK" }.compactMap { volume in
                volume.virtualmachineid.map { "\(volume.id)|\($0)" }
            })
            let recordedAttachments = Set(try await h.db.query("SELECT volume_id || '|' || vm_id FROM device_mappings").compactMap { $0 })
            #expect(cloudAttachments == recordedAttachments)
            #expect(cloudAttachments.count == volumes.count - (volumes.count + 2) / 3)
            // No volume was created, attached or detached more often than asked.
            for (index, volumeId) in volumes.enumerated() {
                let effects = state.sideEffects(for: volumeId)
                #expect(effects.createVolume == 1)
                #expect(effects.attachVolume == (index % 3 == 0 ? 1 : 2))
                #expect(effects.detachVolume == 1)
                #expect(effects.deleteVolume == (index % 3 == 0 ? 1 : 0))
            }
            // The faults were real: operations were retried.
            #expect(try await h.db.count("SELECT count(*)::text FROM volume_operations WHERE attempts > 1") > 0)
        }
    }
}
