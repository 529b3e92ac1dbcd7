import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

@Suite struct HandlerAttachTests {
    static let customer = SimulatorConfiguration.customerVMID
    /// The checkpoint of a worker killed after sending attachVolume, before its answer.
    static let unanswered = #"{"request_unanswered":true}"#

    @Test func attachToTheApplianceMapsTheByIdLinkTheSimulatorCreated() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let id = try await h.enqueue("attach", volume: volumeId, vm: h.appliance)
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            let simulated = try #require(await h.simulator.state().volume(volumeId))
            let mapping = try #require(try await h.mapping(volumeId))
            #expect(mapping == MappingRow(
                vmId: h.appliance, mode: "appliance", cloudStackDeviceId: simulated.deviceid.map(Int32.init),
                byIdPath: link, devicePath: h.backingFile(volumeId), sizeBytes: GiB))
            let response = try row.json()
            #expect(response["device_path"] as? String == link)
            #expect(response["real_device"] as? String == h.backingFile(volumeId))
            #expect(response["operation_mode"] as? String == "appliance")
            #expect(response["cloudstack_device_id"] as? Int == simulated.deviceid)
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
        }
    }

    /// The original daemon's bug: every remote mapping got the same placeholder device path
    /// under a unique index, so a second data disk on one failover VM failed. Here each
    /// volume has its own row, without paths.
    @Test func threeVolumesOnOneRemoteVMAllAttachWithARowEach() async throws {
        try await HandlerHarness.with { h in
            let volumes = [try await h.cloudVolume(), try await h.cloudVolume(), try await h.cloudVolume()]
            let worker = h.startWorker()
            var ids: [UUID] = []
            for volumeId in volumes { ids.append(try await h.enqueue("attach", volume: volumeId, vm: Self.customer)) }
            var rows: [OperationRow] = []
            for id in ids { rows.append(try await h.finished(id)) }
            try await worker.stop()

            #expect(rows.map(\.status) == ["completed", "completed", "completed"], "\(rows.map { $0.error ?? "" })")
            #expect(try await h.db.count("SELECT count(*)::text FROM device_mappings WHERE vm_id = '\(Self.customer)'") == 3)
            var deviceIds: [Int32?] = []
            for volumeId in volumes {
                let mapping = try #require(try await h.mapping(volumeId))
                #expect(mapping.vmId == Self.customer)
                #expect(mapping.mode == "remote")
                #expect(mapping.byIdPath == nil && mapping.devicePath == nil)
                deviceIds.append(mapping.cloudStackDeviceId)
            }
            #expect(Set(deviceIds).count == 3, "each on its own CloudStack device: \(deviceIds)")
            let response = try rows[0].json()
            #expect(response["device_path"] is NSNull)
            #expect(response["operation_mode"] as? String == "remote")
        }
    }

    @Test func attachAsRootPutsTheVolumeAtDeviceZeroOfAStoppedVM() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: testVM, request: #"{"attach_as":"root"}"#))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["cloudstack_device_id"] as? Int == 0)
            let simulated = try #require(await h.simulator.state().volume(volumeId))
            #expect(simulated.deviceid == 0)
            #expect(simulated.type == "ROOT")
            #expect(try await h.mapping(volumeId) == MappingRow(
                vmId: testVM, mode: "remote", cloudStackDeviceId: 0, byIdPath: nil, devicePath: nil, sizeBytes: GiB))
        }
    }

    @Test func attachAsRootToARunningVMFailsClearlyWithoutAskingCloudStack() async throws {
        try await HandlerHarness.with { h in
            let running = try await h.testVM(state: "Running", rootVolume: false)
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: running, request: #"{"device_id":0}"#))
            try await worker.stop()
            #expect(row.status == "failed")
            #expect(row.errorCode == "vm_not_stopped")
            #expect(row.error?.contains("cannot be attached as the root disk (device 0) of VM \(running): the VM is Running") == true,
                    "\(row.error ?? "")")
            #expect(row.error?.contains("stop the VM") == true)
            #expect(row.attempts == 1)
            #expect(await h.sideEffects(volumeId).attachVolume == 0)
            #expect(try await h.mapping(volumeId) == nil)
        }
    }

    @Test func deviceIdThreeIsRefusedAndOtherDeviceIdsArePassedThrough() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let three = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: Self.customer, request: #"{"device_id":3}"#))
            let five = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: Self.customer, request: #"{"device_id":5}"#))
            try await worker.stop()
            #expect(three.status == "failed")
            #expect(three.errorCode == "invalid_request")
            #expect(three.error?.contains("field 'device_id' cannot be 3: CloudStack reserves device 3 for the CD-ROM") == true,
                    "\(three.error ?? "")")
            #expect(five.status == "completed", "\(five.error ?? "")")
            #expect(try await h.mapping(volumeId)?.cloudStackDeviceId == 5)
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
        }
    }

    @Test func attachingAgainVerifiesWithoutAttachingAndFollowsARePointedLink() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let first = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
            #expect(first.status == "completed")
            #expect(try await h.mapping(volumeId)?.devicePath == h.backingFile(volumeId))

            // After a reboot the kernel named the disk differently: udev re-points the link.
            let moved = h.diskDirectory.appendingPathComponent("after-reboot.img")
            #expect(FileManager.default.createFile(atPath: moved.path, contents: nil))
            let handle = try FileHandle(forWritingTo: moved)
            try handle.truncate(atOffset: UInt64(GiB))
            try handle.close()
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            try FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: moved.path)

            let second = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
            try await worker.stop()
            #expect(second.status == "completed", "\(second.error ?? "")")
            #expect(try await h.mapping(volumeId)?.devicePath == realPath(moved.path))
            #expect(try second.json()["real_device"] as? String == realPath(moved.path))
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
        }
    }

    @Test func aVolumeAttachedElsewhereFailsNamingThatVM() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: Self.customer)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
            try await worker.stop()

            #expect(row.status == "failed")
            #expect(row.errorCode == "volume_attached_elsewhere")
            #expect(row.error?.contains("attached to VM \(Self.customer), not \(h.appliance); detach it first") == true, "\(row.error ?? "")")
            #expect(row.attempts == 1)
            #expect(try await h.mapping(volumeId) == nil)
        }
    }

    @Test func attachToAMissingVMFailsClearly() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let missingVM = randomVolumeId()
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: missingVM))
            try await worker.stop()

            #expect(row.status == "failed")
            #expect(row.errorCode == "vm_not_found")
            #expect(row.error?.contains("VM \(missingVM) does not exist") == true, "\(row.error ?? "")")
            #expect(row.attempts == 1)
            // CloudStack answered with an error, so nothing was started: the mark is cleared.
            #expect(row.checkpoint?.contains("request_unanswered") == false, "\(row.checkpoint ?? "")")
            #expect(try await h.mapping(volumeId) == nil)
        }
    }

    @Test func aLinkThatNeverAppearsFailsNamingThePath() async throws {
        try await HandlerHarness.with(hotPlug: false, deviceWaitTimeout: .milliseconds(300)) { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance, maxAttempts: 2))
            try await worker.stop()

            let expectedLink = try h.environment.resolver.candidateLinkPaths(volumeId: volumeId)[0]
            #expect(row.status == "failed")
            #expect(row.errorCode == "device_link_timeout")
            #expect(row.error?.contains(expectedLink) == true, "\(row.error ?? "")")
            #expect(row.attempts == 2)
            // The retry verified the attachment CloudStack made; it did not attach again.
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(try await h.mapping(volumeId) == nil)
        }
    }

    @Test func anAttachRescuedWithItsJobIdWaitsOnThatJob() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(800)) { h in
            let volumeId = try await h.cloudVolume()
            // A worker sent attachVolume, checkpointed the job id, and died.
            let jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: h.appliance)
            let id = try await h.enqueue("attach", volume: volumeId, vm: h.appliance, checkpoint: #"{"job_id":"\#(jobId)"}"#)
            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(try await h.mapping(volumeId)?.byIdPath == h.simulator.byIDLinkPath(forVolumeID: volumeId))
        }
    }

    /// The crash window: attachVolume accepted, the worker killed before the job id reached
    /// the checkpoint, which holds only the mark. The job is still running (held pending
    /// for 2 s), so the volume is not attached yet; the next worker adopts the job
    /// CloudStack lists on the volume instead of attaching a second time.
    @Test func anAttachKilledBeforeCheckpointingTheJobIdAdoptsThePendingJob() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await h.sentAndHeldPending { try await h.client.attachVolume(id: volumeId, virtualMachineId: h.appliance) }
            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance, checkpoint: Self.unanswered)

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(row.checkpoint?.contains(#""job_id": "\#(jobId)""#) == true, "adopted, not found done: \(row.checkpoint ?? "")")
            #expect(row.checkpoint?.contains("request_unanswered") == false)
            #expect(try await h.mapping(volumeId)?.byIdPath == h.simulator.byIDLinkPath(forVolumeID: volumeId))
        }
    }

    /// The other side of the window: the worker died before attachVolume left it. Nothing is
    /// pending and the volume is unchanged, so the request is sent, once.
    @Test func anAttachWhoseRequestNeverArrivedIsSentOnce() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: Self.customer, checkpoint: Self.unanswered)

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == Self.customer)
        }
    }

    /// The mark is in the checkpoint before attachVolume is sent (every API call answered
    /// 1 s late holds the request in flight), and the job id replaces it.
    @Test func theUnansweredMarkIsSavedBeforeAttachVolumeIsSent() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            await h.simulator.setFaults(SimulatorFaults(latencyMs: 1000))
            let worker = h.startWorker()
            let id = try await h.enqueue("attach", volume: volumeId, vm: Self.customer)
            try await eventually("the mark saved while attachVolume is unanswered") {
                try await h.operation(id).checkpoint == #"{"request_unanswered": true}"#
            }
            #expect(await h.simulator.state().requestCounts["attachVolume"] == nil)
            let row = try await h.finished(id)
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.checkpoint?.contains("job_id") == true)
            #expect(row.checkpoint?.contains("request_unanswered") == false)
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
        }
    }

    @Test func aWorkerStoppedMidAttachHandsTheJobToTheNextWorker() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(1500)) { h in
            let volumeId = try await h.cloudVolume()
            let first = h.startWorker { $0.shutdownGracePeriod = .milliseconds(50) }
            let id = try await h.enqueue("attach", volume: volumeId, vm: h.appliance)
            try await eventually("job id checkpointed") {
                try await h.operation(id).checkpoint?.contains("job_id") == true
            }
            try await first.stop()
            let released = try await h.operation(id)
            #expect(released.status == "pending")

            let second = h.startWorker()
            let row = try await h.finished(id)
            try await second.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.claimedBy == second.worker.name)
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(try await h.mapping(volumeId)?.mode == "appliance")
        }
    }
}
