import CloudStack
import CloudStackSimulator
import Foundation
import Operations
import Testing

/// resizeVolume as the simulator answers it (SimulatedCloud+ResizeVolume.swift, after
/// ResizeVolumeCmd and VolumeApiServiceImpl.resizeVolume): an unknown id is a synchronous
/// 431; every other refusal fails the job with 432 and CloudStack's own text.
@Suite("CloudStack resizeVolume")
struct CloudStackResizeVolumeTests {
    private func jobError(_ harness: CloudStackHarness, _ volumeId: String, sizeGB: Int) async throws -> CloudStackError {
        try #require(await expectCloudStackError {
            let jobId = try await harness.client.resizeVolume(id: volumeId, sizeGB: sizeGB)
            _ = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
        })
    }

    private func volume(_ harness: CloudStackHarness, offering: String, sizeGB: Int?) async throws -> String {
        let (volumeId, jobId) = try await harness.client.createVolume(
            name: "r", zoneId: SimulatorConfiguration.zoneID, diskOfferingId: offering, sizeGB: sizeGB)
        _ = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
        return volumeId
    }

    @Test("a custom-size volume grows to size << 30 bytes; shrinking without shrinkok and sizes out of range are refused")
    func customOffering() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(customDiskSizeMaxGB: 10)) { harness in
            let volumeId = try await volume(harness, offering: SimulatorConfiguration.customDiskOfferingID, sizeGB: 2)
            let jobId = try await harness.client.resizeVolume(id: volumeId, sizeGB: 5)
            let result = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            #expect(result.volume?.size == 5 << 30)
            #expect(try await harness.client.listVolumes(id: volumeId).first?.size == 5 << 30)

            let shrink = try await jobError(harness, volumeId, sizeGB: 3)
            #expect(shrink.errorCode == 432)
            #expect(shrink.errorText == "Going from existing size of \(5 << 30) to size of \(3 << 30) would shrink the volume."
                + "Need to sign off by supplying the shrinkok parameter with value of true.")
            #expect(try await jobError(harness, volumeId, sizeGB: 11).errorText == "Volume size: 11 GB is out of allowed range. Min: 1. Max: 10")
            #expect(try await harness.client.listVolumes(id: volumeId).first?.size == 5 << 30)
        }
    }

    @Test("a fixed-size offering's volume takes no size; an unknown id is refused at once")
    func fixedOfferingAndUnknownId() async throws {
        try await CloudStackHarness.with { harness in
            let volumeId = try await volume(harness, offering: SimulatorConfiguration.fixedDiskOfferingID, sizeGB: nil)
            let error = try await jobError(harness, volumeId, sizeGB: 50)
            #expect(error.errorCode == 432)
            #expect(error.errorText?.hasPrefix("To change a volume's size without providing a new disk offering, its current disk offering must be customizable") == true)

            let unknown = try #require(await expectCloudStackError {
                _ = try await harness.client.resizeVolume(id: UUID().uuidString.lowercased(), sizeGB: 2)
            })
            #expect(unknown.errorCode == 431 && unknown.jobId == nil)
        }
    }

    @Test("a volume left Attaching is refused naming its state")
    func volumeState() async throws {
        try await CloudStackHarness.with { harness in
            let volumeId = try await volume(harness, offering: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            _ = try await harness.simulator.setVolumeState(id: volumeId, SimulatorVolumeState(state: "Attaching"))
            #expect(try await jobError(harness, volumeId, sizeGB: 2).errorText
                == "Volume should be in ready or allocated state before attempting a resize. Volume \(volumeId) is in state Attaching.")
        }
    }
}
