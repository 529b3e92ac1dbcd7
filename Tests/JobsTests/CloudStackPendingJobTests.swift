import CloudStackSimulator
import Foundation
import Operations
import Testing

/// listVolumes shows the async job acting on a volume while it is pending, as real
/// CloudStack's `volume_view` (a LEFT JOIN on `async_job … AND job_status = 0`) and
/// VolumeJoinDaoImpl.newVolumeResponse do; the recovery of an unanswered attach or detach
/// depends on it.
@Suite struct CloudStackPendingJobTests {
    @Test("listVolumes carries jobid and jobstatus 0 during a slow attach, and neither once it ended")
    func pendingAttachIsListed() async throws {
        try await CloudStackHarness.with(asyncDelay: .milliseconds(600)) { harness in
            let volume = try await harness.createVolume()
            #expect(volume.jobid == nil)
            let jobId = try await harness.client.attachVolume(id: volume.id.value, virtualMachineId: harness.applianceVMID)

            let pending = try #require(try await harness.client.listVolumes(id: volume.id.value).first)
            #expect(pending.jobid == jobId)
            #expect(pending.jobstatus == 0)
            #expect(pending.pendingJobId == jobId)
            #expect(pending.virtualmachineid == nil, "CloudStack sets the VM only when the job ends")
            let raw = try await harness.rawRequest([("command", "listVolumes"), ("id", volume.id.value), ("response", "json")])
            #expect(raw.body.contains(#""jobid":"\#(jobId)","jobstatus":0}"#), "\(raw.body)")

            _ = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            let done = try #require(try await harness.client.listVolumes(id: volume.id.value).first)
            #expect(done.virtualmachineid?.value == harness.applianceVMID)
            #expect(done.jobid == nil && done.jobstatus == nil)
            let after = try await harness.rawRequest([("command", "listVolumes"), ("id", volume.id.value), ("response", "json")])
            #expect(!after.body.contains("jobid") && !after.body.contains("jobstatus"), "\(after.body)")
        }
    }

    @Test("listVirtualMachines carries the pending stop job the same way (user_vm_view), and drops it once the job ended")
    func pendingStopIsListed() async throws {
        try await CloudStackHarness.with(asyncDelay: .milliseconds(600)) { harness in
            let vmId = SimulatorConfiguration.customerVMID
            #expect(try await harness.client.listVirtualMachines(id: vmId).first?.jobid == nil)
            let jobId = try await harness.client.stopVirtualMachine(id: vmId)
            let pending = try #require(try await harness.client.listVirtualMachines(id: vmId).first)
            #expect(pending.jobid == jobId)
            #expect(pending.jobstatus == 0)
            _ = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            let done = try #require(try await harness.client.listVirtualMachines(id: vmId).first)
            #expect(done.state == "Stopped")
            #expect(done.jobid == nil && done.jobstatus == nil)
        }
    }

    @Test("stuck attach and detach jobs stay listed on their volumes; other volumes carry no job")
    func stuckJobsAreListed() async throws {
        try await CloudStackHarness.with { harness in
            let idle = try await harness.createVolume()
            let toAttach = try await harness.createVolume()
            let toDetach = try await harness.createVolume()
            _ = try await harness.attach(toDetach.id.value, to: SimulatorConfiguration.customerVMID)

            await harness.simulator.setFaults(SimulatorFaults(stuckRate: 1))
            let attachJob = try await harness.client.attachVolume(id: toAttach.id.value, virtualMachineId: SimulatorConfiguration.customerVMID)
            let detachJob = try await harness.client.detachVolume(id: toDetach.id.value)
            try await Task.sleep(for: .milliseconds(200))  // ten times the job delay

            #expect(try await harness.client.queryAsyncJobResult(jobId: attachJob).status == .pending)
            let listed = Dictionary(uniqueKeysWithValues: try await harness.client.listVolumes().map { ($0.id, $0) })
            #expect(listed[toAttach.id]?.jobid == attachJob)
            #expect(listed[toAttach.id]?.jobstatus == 0)
            #expect(listed[toDetach.id]?.jobid == detachJob)
            #expect(listed[toDetach.id]?.virtualmachineid?.value == SimulatorConfiguration.customerVMID)
            #expect(listed[idle.id]?.jobid == nil)
        }
    }
}
