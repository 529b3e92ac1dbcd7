import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// A volume whose UUID is upper case in CloudStack (an admin's `updateVolume customid=`;
/// `SimulatorFaults.upperCaseVolumeIDs`): `diskUuidToSerial` keeps the case, so its by-id
/// link is upper case. volumed may hold the id in either case (the HTTP API lower-cases
/// ids; an orchestrator inserting rows may copy CloudStack's spelling).
@Suite struct HandlerSerialCaseTests {
    @Test func aVolumeWithAnUpperCaseUUIDIsFoundByItsUpperCaseLinkAndDetachWaitsForThatLink() async throws {
        var faults = SimulatorFaults()
        faults.upperCaseVolumeIDs = true
        faults.linkRemoveDelayMs = 800
        try await HandlerHarness.with(faults: faults) { h in
            let worker = h.startWorker()
            let cloudId = try await h.cloudVolume()
            try #require(cloudId == cloudId.uppercased(), "the simulator made \(cloudId)")
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: cloudId))
            #expect(link.hasSuffix("/virtio-" + String(cloudId.replacingOccurrences(of: "-", with: "").prefix(20))))

            // As the HTTP API stores it: lower case.
            let volumeId = cloudId.lowercased()
            let attach = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
            #expect(attach.status == "completed", "\(attach.errorCode ?? ""): \(attach.error ?? "")")
            let mapping = try await h.mapping(volumeId)
            #expect(mapping?.byIdPath == link, "the mapping records the link udev made, in its case")
            #expect(mapping?.devicePath == h.backingFile(cloudId))

            let detach = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            #expect(detach.status == "completed", "\(detach.errorCode ?? ""): \(detach.error ?? "")")
            #expect(!FileManager.default.fileExists(atPath: link), "detach completed while \(link) was still present")
            #expect(try await h.mapping(volumeId) == nil)

            // As CloudStack spells it: upper case.
            let again = try await h.finished(try await h.enqueue("attach", volume: cloudId, vm: h.appliance))
            #expect(again.status == "completed", "\(again.errorCode ?? ""): \(again.error ?? "")")
            // The database stores ids in lower case whatever the client sent (migration 0005).
            #expect(again.volumeId == volumeId)
            #expect(try await h.mapping(volumeId)?.byIdPath == link)
            #expect(await h.sideEffects(cloudId) == SimulatorState.SideEffects(createVolume: 1, attachVolume: 2, detachVolume: 1))
            try await worker.stop()
        }
    }
}
