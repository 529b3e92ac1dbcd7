import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// A volume a management-server restart left `Attaching`/`Detaching` (see
/// SimulatedCloud+VolumeStates.swift): CloudStack refuses attaches with 431 until an admin
/// resets it; volumed says so with its own code and advice, sends nothing, and reconcile lists it.
@Suite struct HandlerTransitionalStateTests {
    @Test func cloudStackRefusesToAttachAVolumeLeftAttaching() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.simulator.setVolumeState(id: volumeId, SimulatorVolumeState(state: "Attaching"))
            let jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: h.appliance)
            let error = try #require(await expectCloudStackError { _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10)) })
            #expect(error.errorCode == 431)
            #expect(error.errorText == "Volume state must be in Allocated, Ready or in Uploaded state")
            #expect(error.code == "cloudstack_volume_state_invalid")
            #expect(!error.isTransient)
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
        }
    }

    @Test func anAttachOfAVolumeLeftAttachingFailsWithAdviceAndSendsNothing() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.simulator.setVolumeState(id: volumeId, SimulatorVolumeState(state: "Attaching"))
            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)

            #expect(row.status == "failed")
            #expect(row.errorCode == "volume_stuck_in_transition", "\(row.errorCode ?? "") \(row.error ?? "")")
            #expect(row.attempts == 1)
            #expect(row.error?.contains("Attaching") == true)
            #expect(row.error?.contains("updateVolume id=\(volumeId) state=Ready") == true, "\(row.error ?? "")")
            #expect(await h.simulator.state().requestCounts["attachVolume"] == nil)

            // Once an admin resets the state, the same attach goes through.
            try await h.simulator.setVolumeState(id: volumeId, SimulatorVolumeState(state: "Allocated"))
            let again = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)
            #expect(again.status == "completed", "\(again.error ?? "")")
        }
    }

    @Test func reconcileListsAVolumeLeftDetaching() async throws {
        try await ReconcileWorld.run { world in
            let volumeId = try await world.attachedThroughVolumed()
            try await world.harness.simulator.setVolumeState(id: volumeId, SimulatorVolumeState(state: "Detaching"))

            let report = try await world.reconcile()
            let finding = try #require(report.findings(.volumeStuckInTransition).first)
            #expect(finding.volumeId == volumeId)
            #expect(finding.message.contains("Detaching") && finding.message.contains("updateVolume"), "\(finding.message)")
            #expect(report.findings(.volumeStuckInTransition).count == 1)
        }
    }

    @Test func theSimulatorRefusesStatesThatDoNotFitTheVolume() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let detaching = try await postToSimulator(harness, "/sim/volumes/\(volume.id)", #"{"state":"Detaching"}"#)
            #expect(detaching.status == 400)
            #expect(detaching.body.contains("Detaching is for an attached volume"), "\(detaching.body)")
            let unknown = try await postToSimulator(harness, "/sim/volumes/\(volume.id)", #"{"state":"Sleeping"}"#)
            #expect(unknown.status == 400)
            #expect(unknown.body.contains("state must be one of"), "\(unknown.body)")
            #expect(try await postToSimulator(harness, "/sim/volumes/\(volume.id)", #"{"state":"Attaching"}"#).status == 200)
            #expect(await harness.simulator.state().volume(volume.id.value)?.state == "Attaching")
        }
    }
}
