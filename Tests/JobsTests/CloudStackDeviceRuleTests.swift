import CloudStack
import CloudStackSimulator
import Foundation
import Operations
import Testing

/// VolumeApiServiceImpl's device rules, as the simulator applies them inside the attach
/// and detach jobs: device 0 is the root disk (Stopped VM only, one per VM), device 3 is the
/// CD-ROM, and a ROOT volume turns back into a DATADISK when it comes off.
@Suite("CloudStack device rules")
struct CloudStackDeviceRuleTests {
    private func attachError(_ harness: CloudStackHarness, _ volumeId: String, to vmId: String, deviceId: Int?) async throws -> CloudStackError {
        try #require(await expectCloudStackError {
            _ = try await harness.attach(volumeId, to: vmId, deviceId: deviceId)
        })
    }

    @Test("device 0 on a running VM fails 431: a root disk is attached only while the VM is Stopped")
    func rootNeedsAStoppedVM() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let vm = try await harness.simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "running", state: "Running", rootVolume: false))
            let error = try await attachError(harness, volume.id.value, to: vm.id, deviceId: 0)
            #expect(error.errorCode == 431)
            #expect(error.errorText == "Root volume detach can happen only when vm is in states: Stopped or Destroyed")
            #expect(error.code == "cloudstack_vm_not_stopped")
            #expect(!error.isTransient)
            #expect(try await harness.client.listVolumes(id: volume.id.value).first?.virtualmachineid?.value == nil)
        }
    }

    @Test("a second device 0 fails 431: the VM already has a root volume")
    func oneRootPerVM() async throws {
        try await CloudStackHarness.with { harness in
            let first = try await harness.createVolume()
            let second = try await harness.createVolume()
            let testVM = SimulatorConfiguration.testFailoverVMID
            #expect(try await harness.attach(first.id.value, to: testVM, deviceId: 0).type == "ROOT")
            let error = try await attachError(harness, second.id.value, to: testVM, deviceId: 0)
            #expect(error.errorCode == 431)
            #expect(error.errorText == "Vm already has root volume attached to it")
        }
    }

    @Test("device 3 is the CD-ROM's: getDeviceId's RuntimeException, 530, a permanent parameter error")
    func deviceThreeIsReserved() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let error = try await attachError(harness, volume.id.value, to: SimulatorConfiguration.customerVMID, deviceId: 3)
            #expect(error.errorCode == 530)
            #expect(error.errorText == "deviceId should be 0,1,2,4-7")
            #expect(error.code == "cloudstack_parameter_error")
            #expect(!error.isTransient)
        }
    }

    @Test("a device in use fails 530 naming the VM's internal id")
    func deviceInUse() async throws {
        try await CloudStackHarness.with { harness in
            let first = try await harness.createVolume()
            let second = try await harness.createVolume()
            _ = try await harness.attach(first.id.value, to: SimulatorConfiguration.customerVMID, deviceId: 5)
            let error = try await attachError(harness, second.id.value, to: SimulatorConfiguration.customerVMID, deviceId: 5)
            #expect(error.errorCode == 530)
            #expect(error.errorText?.hasPrefix("deviceId 5 is used by vm ") == true)
            #expect(!error.isTransient)
        }
    }

    @Test("a ROOT volume comes off only a stopped VM, and comes off as a DATADISK; the test VM never gets by-id links")
    func rootDetach() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let testVM = SimulatorConfiguration.testFailoverVMID
            _ = try await harness.attach(volume.id.value, to: testVM, deviceId: 0)
            #expect(!FileManager.default.fileExists(atPath: harness.byIDLink(for: volume.id.value).path))
            _ = try await harness.client.waitForJob(jobId: try await harness.client.startVirtualMachine(id: testVM), timeout: .seconds(10))

            let error = try #require(await expectCloudStackError { _ = try await harness.detach(volume.id.value) })
            #expect(error.errorCode == 431)
            #expect(error.errorText == "Root volume detach can happen only when vm is in states: Stopped or Destroyed")

            _ = try await harness.client.waitForJob(jobId: try await harness.client.stopVirtualMachine(id: testVM), timeout: .seconds(10))
            let detached = try await harness.detach(volume.id.value)
            #expect(detached.type == "DATADISK")
            #expect(detached.virtualmachineid == nil)
            // Back on the appliance as a data disk, hot-plugged.
            #expect(try await harness.attach(volume.id.value, to: harness.applianceVMID).deviceid == 1)
            #expect(FileManager.default.fileExists(atPath: harness.byIDLink(for: volume.id.value).path))
        }
    }
}
