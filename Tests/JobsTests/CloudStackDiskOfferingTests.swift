import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import Operations
import Testing

/// createVolume's offering and size rules as VolumeApiServiceImpl.allocVolume applies them
/// (see SimulatedCloud+DiskOfferings.swift): synchronous 431s with CloudStack's own texts,
/// nothing created.
@Suite("CloudStack disk offerings")
struct CloudStackDiskOfferingTests {
    private func createError(
        _ harness: CloudStackHarness, offering: String, sizeGB: Int?
    ) async throws -> CloudStackError {
        try #require(await expectCloudStackError {
            _ = try await harness.client.createVolume(
                name: "refused", zoneId: SimulatorConfiguration.zoneID, diskOfferingId: offering, sizeGB: sizeGB)
        })
    }

    @Test("listDiskOfferings reports a custom offering (disksize 0) and a fixed one with its size, and filters by id")
    func listsBothKinds() async throws {
        try await CloudStackHarness.with { harness in
            let all = try await harness.client.listDiskOfferings()
            let custom = try #require(all.first { $0.id.value == SimulatorConfiguration.customDiskOfferingID })
            let fixed = try #require(all.first { $0.id.value == SimulatorConfiguration.fixedDiskOfferingID })
            #expect(custom.iscustomized == true && custom.disksize == 0)
            #expect(fixed.iscustomized == false && fixed.disksize == SimulatorConfiguration.fixedDiskOfferingSizeGB)
            let one = try await harness.client.listDiskOfferings(id: SimulatorConfiguration.fixedDiskOfferingID)
            #expect(one.map(\.id.value) == [SimulatorConfiguration.fixedDiskOfferingID])
        }
    }

    @Test("a size with a fixed offering is refused; without one the volume gets the offering's size")
    func fixedOffering() async throws {
        try await CloudStackHarness.with { harness in
            let error = try await createError(harness, offering: SimulatorConfiguration.fixedDiskOfferingID, sizeGB: 5)
            #expect(error.errorCode == 431)
            #expect(error.csErrorCode == 4350)
            #expect(error.errorText == "This disk offering does not allow custom size")
            #expect(!error.isTransient)

            let (volumeId, _) = try await harness.client.createVolume(
                name: "fixed", zoneId: SimulatorConfiguration.zoneID, diskOfferingId: SimulatorConfiguration.fixedDiskOfferingID,
                sizeGB: nil)
            let volume = try #require(try await harness.client.listVolumes(id: volumeId).first)
            #expect(volume.size == SimulatorConfiguration.fixedDiskOfferingSizeGB << 30)
            #expect(await harness.simulator.state().volumes.filter { $0.name == "refused" }.isEmpty)
        }
    }

    @Test("a custom offering needs a size, larger than 0 and inside custom.diskoffering.size.min/max")
    func customOfferingSizes() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(customDiskSizeMinGB: 2, customDiskSizeMaxGB: 10)) { harness in
            let offering = SimulatorConfiguration.customDiskOfferingID
            #expect(try await createError(harness, offering: offering, sizeGB: nil).errorText
                == "This disk offering requires a custom size specified")
            #expect(try await createError(harness, offering: offering, sizeGB: 0).errorText == "Disk size must be larger than 0")
            #expect(try await createError(harness, offering: offering, sizeGB: -3).errorText == "Disk size must be larger than 0")
            #expect(try await createError(harness, offering: offering, sizeGB: 1).errorText
                == "Volume size: 1 GB is out of allowed range. Min: 2. Max: 10")
            #expect(try await createError(harness, offering: offering, sizeGB: 11).errorText
                == "Volume size: 11 GB is out of allowed range. Min: 2. Max: 10")
            _ = try await harness.client.createVolume(
                name: "in-range", zoneId: SimulatorConfiguration.zoneID, diskOfferingId: offering, sizeGB: 10)
            let state = await harness.simulator.state()
            #expect(state.volumes.filter { $0.type == "DATADISK" }.map(\.name) == ["in-range"])
        }
    }

    @Test("POST /sim/faults sets the custom size range and refuses a minimum above the maximum, naming the fields")
    func sizeRangeSetting() async throws {
        try await CloudStackHarness.with { harness in
            let refused = try await postFaults(harness, #"{"custom_disk_size_min_gb": 50, "custom_disk_size_max_gb": 20}"#)
            #expect(refused.status == 400)
            #expect(refused.body.contains("custom_disk_size_min_gb"))
            #expect(await harness.simulator.faults().customDiskSizeMaxGB == 1024)
            let accepted = try await postFaults(harness, #"{"custom_disk_size_max_gb": 20}"#)
            #expect(accepted.status == 200)
            #expect(await harness.simulator.faults().customDiskSizeMaxGB == 20)
        }
    }
}

/// `POST <path>` to the simulator's control surface with a JSON `body`; the status and the reply.
func postToSimulator(_ harness: CloudStackHarness, _ path: String, _ body: String) async throws -> (status: Int, body: String) {
    var request = HTTPClientRequest(url: harness.simulator.baseURL + path)
    request.method = .POST
    request.body = .bytes(.init(string: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 16)))
}

func postFaults(_ harness: CloudStackHarness, _ body: String) async throws -> (status: Int, body: String) {
    try await postToSimulator(harness, "/sim/faults", body)
}
