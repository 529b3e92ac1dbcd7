import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// `cleanup` through the queue: a volume handed back from a test-failover VM to the
/// appliance, against real PostgreSQL and the simulator.
@Suite struct HandlerCleanupTests {
    /// A volume on the appliance (through the queue), then detached and attached to `testVM`
    /// as its root disk, as a test failover leaves it.
    private func volumeOnTestVM(_ h: HandlerHarness, _ testVM: String, root: Bool = true) async throws -> String {
        let volumeId = try await h.cloudVolume()
        let attach = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
        try #require(attach.status == "completed", "\(attach.error ?? "")")
        try #require(try await h.finished(try await h.enqueue("detach", volume: volumeId)).status == "completed")
        let request = root ? #"{"attach_as":"root"}"# : "{}"
        let onTest = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: testVM, request: request))
        try #require(onTest.status == "completed", "\(onTest.error ?? "")")
        return volumeId
    }

    @Test func aCleanupStopsTheTestVMDetachesAndHandsTheVolumeBackWithItsApplianceMapping() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let worker = h.startWorker()
            let volumeId = try await volumeOnTestVM(h, testVM)
            try await h.cloudStartVM(testVM)
            #expect(try await h.mapping(volumeId)?.mode == "remote")
            let before = await h.sideEffects(volumeId)

            let row = try await h.finished(try await h.cleanup(volumeId, testVM: testVM))
            try await worker.stop()

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            let response = try row.json()
            #expect(response["device_path"] as? String == link)
            #expect(response["vm_id"] as? String == h.appliance)
            #expect(response["real_device"] as? String == h.backingFile(volumeId))
            #expect(response["test_vm_id"] as? String == testVM)
            #expect(response["test_vm_destroyed"] as? Bool == false)
            let simulated = try #require(await h.simulator.state().volume(volumeId))
            #expect(simulated.virtualmachineid == h.appliance)
            #expect(simulated.type == "DATADISK")
            #expect(try await h.mapping(volumeId) == MappingRow(
                vmId: h.appliance, mode: "appliance", cloudStackDeviceId: simulated.deviceid.map(Int32.init),
                byIdPath: link, devicePath: h.backingFile(volumeId), sizeBytes: GiB))
            #expect(await h.vmState(testVM) == "Stopped")
            #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(stopVirtualMachine: 1, startVirtualMachine: 1))
            #expect(HandlerHarness.delta(before, await h.sideEffects(volumeId)) == SimulatorState.SideEffects(attachVolume: 1, detachVolume: 1))
        }
    }

    @Test func deleteVMDestroysTheTestVMOnceTheLastVolumeVolumedKeepsIsOffIt() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let worker = h.startWorker()
            let root = try await volumeOnTestVM(h, testVM, root: true)
            let data = try await volumeOnTestVM(h, testVM, root: false)
            try await h.cloudStartVM(testVM)

            let first = try await h.finished(try await h.cleanup(root, testVM: testVM, deleteVM: true))
            #expect(first.status == "completed", "\(first.error ?? "")")
            #expect(try first.json()["test_vm_destroyed"] as? Bool == false)
            #expect(await h.vmState(testVM) == "Stopped", "the data volume is still on it: the VM stays")
            #expect(await h.attachedVM(data) == testVM)

            let second = try await h.finished(try await h.cleanup(data, testVM: testVM, deleteVM: true))
            try await worker.stop()
            #expect(second.status == "completed", "\(second.error ?? "")")
            #expect(try second.json()["test_vm_destroyed"] as? Bool == true)
            #expect(await h.vmState(testVM) == nil, "destroyed and expunged")
            #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(
                stopVirtualMachine: 1, startVirtualMachine: 1, destroyVirtualMachine: 1))
            for volumeId in [root, data] {
                #expect(await h.attachedVM(volumeId) == h.appliance)
                #expect(try await h.mapping(volumeId)?.mode == "appliance")
            }
        }
    }

    @Test func aTestVMStuckInStoppingFailsClearlyWithTheVolumeStillOnIt() async throws {
        try await HandlerHarness.with(vmStopTimeout: .seconds(1)) { h in
            let testVM = try await h.testVM(state: "Running", rootVolume: true, sticksInStopping: true)
            let worker = h.startWorker()
            let volumeId = try await volumeOnTestVM(h, testVM, root: false)
            let before = await h.sideEffects(volumeId)

            let row = try await h.finished(try await h.cleanup(volumeId, testVM: testVM))
            #expect(row.status == "failed")
            #expect(row.errorCode == "test_vm_stop_timeout")
            #expect(row.error?.contains("test VM \(testVM) did not reach Stopped within 1 s (it is Stopping)") == true, "\(row.error ?? "")")
            #expect(row.error?.contains("volume \(volumeId) is still attached to it") == true)
            #expect(row.error?.contains(#""force": true"#) == true)
            #expect(row.attempts == 1)
            #expect(await h.attachedVM(volumeId) == testVM)
            #expect(HandlerHarness.delta(before, await h.sideEffects(volumeId)) == SimulatorState.SideEffects())
            #expect(try await h.mapping(volumeId)?.vmId == testVM)
            #expect(await h.vmSideEffects(testVM).stopVirtualMachine == 1)

            // The fix the error names: force. The forced stop marks the VM Stopped.
            let forced = try await h.finished(try await h.cleanup(volumeId, testVM: testVM, force: true))
            try await worker.stop()
            #expect(forced.status == "completed", "\(forced.error ?? "")")
            #expect(await h.attachedVM(volumeId) == h.appliance)
            #expect(await h.vmSideEffects(testVM).stopVirtualMachine == 2)
        }
    }

    /// Workers stopped while the cleanup waits on each of its CloudStack jobs in turn: each
    /// hands the operation back with its checkpoint, and the next worker waits on that job
    /// instead of sending the request again. Every side effect happens exactly once.
    @Test func aCleanupInterruptedDuringEachStepInTurnRepeatsNothing() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(400)) { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            let attach = try await h.client.attachVolume(id: volumeId, virtualMachineId: testVM, deviceId: 0)
            _ = try await h.client.waitForJob(jobId: attach, timeout: .seconds(10))
            try await h.cloudStartVM(testVM)
            let before = await h.sideEffects(volumeId)

            let id = try await h.cleanup(volumeId, testVM: testVM, deleteVM: true)
            var interrupted: [String] = []
            for step in ["stop", "detach", "attach", "destroy"] {
                let worker = h.startWorker { $0.shutdownGracePeriod = .milliseconds(50) }
                try await eventually("the \(step) job id in the checkpoint") { try await h.checkpointHasJob(id, step: step) }
                try await worker.stop()
                if try await h.operation(id).status == "pending" { interrupted.append(step) }
            }
            #expect(interrupted == ["stop", "detach", "attach", "destroy"], "released with its checkpoint at every step")

            let last = h.startWorker()
            let row = try await h.finished(id)
            try await last.stop()
            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.claimedBy == last.worker.name)
            #expect(try row.json()["test_vm_destroyed"] as? Bool == true)
            #expect(HandlerHarness.delta(before, await h.sideEffects(volumeId)) == SimulatorState.SideEffects(attachVolume: 1, detachVolume: 1))
            #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(
                stopVirtualMachine: 1, startVirtualMachine: 1, destroyVirtualMachine: 1))
            #expect(await h.attachedVM(volumeId) == h.appliance)
            #expect(try await h.mapping(volumeId)?.byIdPath == h.simulator.byIDLinkPath(forVolumeID: volumeId))
            #expect(await h.vmState(testVM) == nil)
        }
    }

    @Test func aVolumeAlreadyBackOnTheApplianceIsOnlyVerifiedAndMapped() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let before = await h.sideEffects(volumeId)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.cleanup(volumeId, testVM: testVM))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try await h.mapping(volumeId)?.mode == "appliance")
            #expect(HandlerHarness.delta(before, await h.sideEffects(volumeId)) == SimulatorState.SideEffects())
            #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects())
        }
    }

    @Test func badRequestsAndAVolumeOnAThirdVMFailClearly() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            let worker = h.startWorker()
            let missing = try await h.finished(try await h.enqueue("cleanup", volume: volumeId, request: #"{"delete_vm":true}"#))
            let appliance = try await h.finished(try await h.cleanup(volumeId, testVM: h.appliance))
            let notUUID = try await h.finished(try await h.enqueue("cleanup", volume: volumeId, request: #"{"test_vm_id":"vm-7"}"#))
            let third = try await h.finished(try await h.cleanup(volumeId, testVM: testVM))
            try await worker.stop()

            #expect(missing.errorCode == "invalid_request")
            #expect(missing.error?.contains("field 'test_vm_id' is missing") == true, "\(missing.error ?? "")")
            #expect(appliance.errorCode == "invalid_request")
            #expect(appliance.error?.contains("names the appliance") == true, "\(appliance.error ?? "")")
            #expect(notUUID.errorCode == "invalid_request")
            #expect(notUUID.error?.contains("field 'test_vm_id' must be a CloudStack UUID") == true, "\(notUUID.error ?? "")")
            #expect(third.errorCode == "volume_attached_elsewhere")
            #expect(third.error?.contains("attached to VM \(SimulatorConfiguration.customerVMID), neither the test VM \(testVM) nor the appliance") == true,
                    "\(third.error ?? "")")
            #expect(await h.attachedVM(volumeId) == SimulatorConfiguration.customerVMID)
            #expect(await h.sideEffects(volumeId).detachVolume == 0)
        }
    }
}
