import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// `create` reads the disk offering first: a fixed-size offering gets no `size` (CloudStack
/// refuses one with it), and a request whose size contradicts the offering fails as
/// `invalid_request` before anything is created.
@Suite struct HandlerCreateOfferingTests {
    static func request(size: Int64, offering: String = SimulatorConfiguration.fixedDiskOfferingID) -> String {
        #"{"name":"fixed-01","size":\#(size),"disk_offering_id":"\#(offering)","zone_id":"\#(SimulatorConfiguration.zoneID)"}"#
    }

    static let fixedBytes = SimulatorConfiguration.fixedDiskOfferingSizeGB * GiB

    @Test func aFixedSizeOfferingIsCreatedWithoutSendingASize() async throws {
        try await HandlerHarness.with { h in
            let row = try await h.runOnFreshWorker("create", request: Self.request(size: Self.fixedBytes))

            #expect(row.status == "completed", "\(row.error ?? "")")
            let volumeId = try #require(row.volumeId)
            #expect(try row.json()["size_bytes"] as? Int64 == Self.fixedBytes)
            #expect(await h.simulator.state().volume(volumeId)?.size == Self.fixedBytes)
            #expect(await h.sideEffects(volumeId).createVolume == 1)
        }
    }

    @Test func aSizeThatContradictsAFixedOfferingFailsNamingTheOfferingsSize() async throws {
        try await HandlerHarness.with { h in
            let row = try await h.runOnFreshWorker("create", request: Self.request(size: 2 * GiB))

            #expect(row.status == "failed")
            #expect(row.errorCode == "invalid_request")
            #expect(row.attempts == 1)
            let error = row.error ?? ""
            #expect(error.contains("'size'"), "\(error)")
            #expect(error.contains("fixed size of \(SimulatorConfiguration.fixedDiskOfferingSizeGB) GB"), "\(error)")
            #expect(error.contains(SimulatorConfiguration.fixedDiskOfferingID), "\(error)")
            #expect(await h.simulator.state().requestCounts["createVolume"] == nil)
        }
    }

    @Test func anUnknownOfferingFailsAsNotFoundWithoutCreating() async throws {
        try await HandlerHarness.with { h in
            let row = try await h.runOnFreshWorker(
                "create", request: Self.request(size: GiB, offering: "0b0b0b0b-0000-4000-8000-000000000000"))

            #expect(row.status == "failed")
            #expect(row.errorCode == "cloudstack_not_found", "\(row.error ?? "")")
            #expect(await h.simulator.state().requestCounts["createVolume"] == nil)
        }
    }
}
