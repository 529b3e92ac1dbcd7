import CloudStackSimulator
import Foundation
import Operations
import Testing

/// The client against the in-process simulator, one command at a time, then the volume
/// life cycle with hot-plug into the appliance.
@Suite("CloudStack client against the simulator")
struct CloudStackClientTests {
    @Test("listZones and listDiskOfferings return the simulator's inventory")
    func inventory() async throws {
        try await CloudStackHarness.with { harness in
            let zones = try await harness.client.listZones()
            #expect(zones.map(\.id.value) == [SimulatorConfiguration.zoneID])
            let offerings = try await harness.client.listDiskOfferings()
            #expect(offerings.map(\.id.value) == [SimulatorConfiguration.customDiskOfferingID, SimulatorConfiguration.fixedDiskOfferingID])
            #expect(offerings.map(\.iscustomized) == [true, false])
        }
    }

    @Test("listVirtualMachines lists all three VMs and filters by id")
    func virtualMachines() async throws {
        try await CloudStackHarness.with { harness in
            let all = try await harness.client.listVirtualMachines()
            #expect(Set(all.map(\.id.value)) == [harness.applianceVMID, SimulatorConfiguration.customerVMID, SimulatorConfiguration.testFailoverVMID])
            let appliance = try await harness.client.listVirtualMachines(id: harness.applianceVMID)
            #expect(appliance.count == 1)
            #expect(appliance.first?.state == "Running")
            let stopped = try await harness.client.listVirtualMachines(id: SimulatorConfiguration.testFailoverVMID)
            #expect(stopped.first?.state == "Stopped")
        }
    }

    @Test("createVolume returns ids at once; the volume is Allocated, sized in GiB, and listed before the job ends")
    func createVolume() async throws {
        try await CloudStackHarness.with(asyncDelay: .milliseconds(300)) { harness in
            let (volumeID, jobID) = try await harness.client.createVolume(
                name: "data-1", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 3
            )
            let pending = try await harness.client.queryAsyncJobResult(jobId: jobID)
            #expect(pending.status == .pending)
            let listed = try await harness.client.listVolumes(id: volumeID)
            #expect(listed.first?.state == "Allocated")

            let done = try await harness.client.waitForJob(jobId: jobID, timeout: .seconds(5))
            #expect(done.status == .succeeded)
            #expect(done.resultCode == 0)
            let volume = try #require(done.volume)
            #expect(volume.id.value == volumeID)
            #expect(volume.name == "data-1")
            #expect(volume.size == 3 * 1024 * 1024 * 1024)
            #expect(volume.state == "Allocated")
            #expect(volume.type == "DATADISK")
            #expect(volume.virtualmachineid == nil)
            #expect(volume.deviceid == nil)
        }
    }

    @Test("attach to the appliance hot-plugs a by-id link; detach removes it; data survives; delete removes the backing file")
    func applianceHotPlugLifecycle() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume(sizeGB: 2)
            let link = harness.byIDLink(for: volume.id.value)
            #expect(!FileManager.default.fileExists(atPath: link.path))

            let attached = try await harness.attach(volume.id.value, to: harness.applianceVMID)
            #expect(attached.virtualmachineid?.value == harness.applianceVMID)
            #expect(attached.deviceid == 1)
            #expect(attached.state == "Ready")
            #expect(attached.vmstate == "Running")
            #expect(link.lastPathComponent == "virtio-" + String(volume.id.value.replacingOccurrences(of: "-", with: "").prefix(20)))
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
            #expect(target == harness.backingFile(for: volume.id.value).path)
            let size = try FileManager.default.attributesOfItem(atPath: target)[.size].flatMap { Int64("\($0)") }
            #expect(size == Int64(2) << 30)

            // Write through the link, as a replication would, then detach and re-attach.
            let handle = try FileHandle(forWritingTo: link)
            try handle.write(contentsOf: Data("hello".utf8))
            try handle.close()

            let detached = try await harness.detach(volume.id.value)
            #expect(detached.virtualmachineid == nil)
            #expect(detached.deviceid == nil)
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)) == nil)
            #expect(FileManager.default.fileExists(atPath: harness.backingFile(for: volume.id.value).path))

            _ = try await harness.attach(volume.id.value, to: harness.applianceVMID)
            let reread = try FileHandle(forReadingFrom: link)
            #expect(try reread.read(upToCount: 5) == Data("hello".utf8))
            try reread.close()

            _ = try await harness.detach(volume.id.value)
            try await harness.client.deleteVolume(id: volume.id.value)
            #expect(!FileManager.default.fileExists(atPath: harness.backingFile(for: volume.id.value).path))
            #expect(try await harness.client.listVolumes(id: volume.id.value).isEmpty)

            let effects = await harness.simulator.state().sideEffects(for: volume.id.value)
            #expect(effects == SimulatorState.SideEffects(createVolume: 1, attachVolume: 2, detachVolume: 2, deleteVolume: 1))
        }
    }

    @Test("attach to another VM creates no by-id link, and listVolumes filters by VM")
    func remoteAttach() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let attached = try await harness.attach(volume.id.value, to: SimulatorConfiguration.customerVMID)
            #expect(attached.virtualmachineid?.value == SimulatorConfiguration.customerVMID)
            #expect(attached.vmname == "customer-vm-01")
            #expect(!FileManager.default.fileExists(atPath: harness.byIDLink(for: volume.id.value).path))
            #expect(try FileManager.default.contentsOfDirectory(atPath: harness.byIDDirectory.path).isEmpty)

            let onCustomerVM = try await harness.client.listVolumes(virtualMachineId: SimulatorConfiguration.customerVMID)
            #expect(Set(onCustomerVM.map(\.type)) == ["ROOT", "DATADISK"])
            #expect(onCustomerVM.contains { $0.id == volume.id && $0.deviceid == 1 })
        }
    }

    @Test("device ids skip 3 (the CD-ROM) and an explicit device id is honoured")
    func deviceIDs() async throws {
        try await CloudStackHarness.with { harness in
            var devices: [Int] = []
            for _ in 0..<3 {
                let volume = try await harness.createVolume()
                devices.append(try #require(try await harness.attach(volume.id.value, to: SimulatorConfiguration.customerVMID).deviceid))
            }
            #expect(devices == [1, 2, 4])
            let chosen = try await harness.createVolume()
            #expect(try await harness.attach(chosen.id.value, to: SimulatorConfiguration.customerVMID, deviceId: 6).deviceid == 6)
        }
    }

    @Test("attach as root (device 0) to the stopped test-failover VM")
    func attachAsRoot() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let attached = try await harness.attach(volume.id.value, to: SimulatorConfiguration.testFailoverVMID, deviceId: 0)
            #expect(attached.deviceid == 0)
            #expect(attached.type == "ROOT")
            #expect(attached.vmstate == "Stopped")
        }
    }

    @Test("a volume id that no longer exists lists as empty ({\"listvolumesresponse\":{}})")
    func emptyListAfterDelete() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            try await harness.client.deleteVolume(id: volume.id.value)
            #expect(try await harness.client.listVolumes(id: volume.id.value).isEmpty)
            let again = try #require(await expectCloudStackError { try await harness.client.deleteVolume(id: volume.id.value) })
            #expect(again.code == "cloudstack_not_found")
            #expect(again.csErrorCode == 4350)
            #expect(await harness.simulator.state().sideEffects(for: volume.id.value).deleteVolume == 1)
            let raw = try await harness.rawRequest([("command", "listVolumes"), ("id", volume.id.value), ("response", "json")])
            #expect(raw.status == 200)
            #expect(raw.body == #"{"listvolumesresponse":{}}"#)
            #expect(raw.contentType == "application/json; charset=UTF-8")
        }
    }

    @Test("the client logs never contain the secret key or a signature")
    func logsStayClean() async throws {
        try await CloudStackHarness.with(clientSecretKey: "wrong-\(CloudStackHarness.secretKey)") { harness in
            _ = try? await harness.client.listZones()
            _ = try? await harness.client.listVolumes(id: "00000000-0000-4000-8000-000000000000")
            let lines = harness.logs.all
            #expect(!lines.isEmpty)
            for line in lines {
                #expect(!line.contains(CloudStackHarness.secretKey))
                #expect(!line.contains("signature="))
            }
        }
    }
}
