import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// KVM's detach timeout (see SimulatedCloud+DetachTimeouts.swift): the job fails with 530
/// after wait.detach.device while the guest still holds the disk, which it may release later
/// or never. volumed watches the by-id link: a released disk is detached once more within the
/// same attempt; a disk still held fails the attempt with `detach_device_held`.
@Suite struct HandlerDetachTimeoutTests {
    static func detachJobs(_ state: SimulatorState, _ volumeId: String) -> (succeeded: Int, failed: Int) {
        let jobs = state.jobs.filter { $0.command == "detachVolume" && $0.volumeid == volumeId }
        return (jobs.filter { $0.status == 1 }.count, jobs.filter { $0.status == 2 }.count)
    }

    @Test func theSimulatorFailsTheDetachLikeKVMAndReleasesTheDiskLater() async throws {
        try await HandlerHarness.with(faults: SimulatorFaults(detachTimeoutRate: 1, detachReleaseMs: 300)) { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))

            let error = try #require(await expectCloudStackError {
                _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))
            })
            #expect(error.errorCode == 530)
            #expect(error.errorText?.contains("Could not detach volume after sending the command and waiting for [10000] milliseconds") == true,
                    "\(error.errorText ?? "")")
            #expect(error.code == "cloudstack_detach_timeout")
            #expect(error.isTransient)
            #expect(await h.attachedVM(volumeId) == h.appliance, "CloudStack still records it attached")
            #expect(await h.sideEffects(volumeId).detachTimedOut == 1)
            // (That the link stays while the guest holds the disk is aDiskTheGuestNeverReleases…'s
            // check; with a release 300 ms later, a slow machine may already be past it here.)

            try await eventually(timeout: .seconds(5), "the guest releases the disk") { !FileManager.default.fileExists(atPath: link) }
            #expect(await h.attachedVM(volumeId) == h.appliance)
            _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))
            #expect(await h.attachedVM(volumeId) == nil)
        }
    }

    @Test func aDiskReleasedAfterTheTimeoutIsDetachedOnceMoreInTheSameAttempt() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let attached = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)
            try #require(attached.status == "completed", "\(attached.error ?? "")")
            await h.simulator.setFaults(SimulatorFaults(detachTimeoutRate: 1, detachReleaseMs: 300))

            let row = try await h.runOnFreshWorker("detach", volume: volumeId)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts == 1, "no retry with backoff: the link going away is the signal")
            #expect(try row.json()["vm_id"] as? String == h.appliance)
            let state = await h.simulator.state()
            #expect(state.volume(volumeId)?.virtualmachineid == nil)
            #expect(Self.detachJobs(state, volumeId) == (succeeded: 1, failed: 1), "exactly one detach took effect")
            #expect(state.sideEffects(for: volumeId).detachVolume == 2)
            #expect(try await h.mapping(volumeId) == nil)
        }
    }

    @Test func aDiskTheGuestNeverReleasesFailsClearlyAfterTheRetries() async throws {
        try await HandlerHarness.with(deviceWaitTimeout: .seconds(1)) { h in
            let volumeId = try await h.cloudVolume()
            let attached = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)
            try #require(attached.status == "completed", "\(attached.error ?? "")")
            await h.simulator.setFaults(SimulatorFaults(detachTimeoutRate: 1))

            let id = try await h.enqueue("detach", volume: volumeId, maxAttempts: 2)
            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "failed")
            #expect(row.errorCode == "detach_device_held", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts == 2)
            let error = row.error ?? ""
            #expect(error.contains("waiting for [10000] milliseconds") && error.contains("still holds the disk"), "\(error)")
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            #expect(FileManager.default.fileExists(atPath: link))
            let state = await h.simulator.state()
            #expect(state.volume(volumeId)?.virtualmachineid == h.appliance)
            #expect(Self.detachJobs(state, volumeId) == (succeeded: 0, failed: 2), "one detach per attempt, none more")
            #expect(try await h.mapping(volumeId)?.vmId == h.appliance, "the mapping stays with the disk")
        }
    }

    @Test func postSimFaultsValidatesTheDetachTimeoutFields() async throws {
        try await CloudStackHarness.with { harness in
            let rate = try await postFaults(harness, #"{"detach_timeout_rate": 1.5}"#)
            #expect(rate.status == 400 && rate.body.contains("detach_timeout_rate must be between 0 and 1"), "\(rate.body)")
            let release = try await postFaults(harness, #"{"detach_timeout_rate": 0.1, "detach_release_ms": -1}"#)
            #expect(release.status == 400 && release.body.contains("detach_release_ms"), "\(release.body)")
            #expect(try await postFaults(harness, #"{"detach_timeout_rate": 0.1, "detach_release_ms": 500}"#).status == 200)
            #expect(await harness.simulator.faults().detachReleaseMs == 500)
            #expect(try await postFaults(harness, #"{"detach_release_ms": null}"#).status == 200)
            #expect(await harness.simulator.faults().detachReleaseMs == nil)
            #expect(await harness.simulator.faults().detachTimeoutRate == 0.1)
        }
    }
}
