import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

@Suite struct HandlerCreateTests {
    static let offering = SimulatorConfiguration.customDiskOfferingID
    static let zone = SimulatorConfiguration.zoneID

    static func request(name: String = "data-01", size: Int64) -> String {
        #"{"name":"\#(name)","size":\#(size),"disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)","zone_id":"\#(SimulatorConfiguration.zoneID)","metadata":{"owner":"tests"}}"#
    }

    @Test func createRoundsUpToWholeGBAndRecordsTheVolume() async throws {
        try await HandlerHarness.with { h in
            let worker = h.startWorker()
            let id = try await h.enqueue("create", request: Self.request(size: GiB + 1))
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            let response = try row.json()
            let volumeId = try #require(response["volume_id"] as? String)
            #expect(response["size_bytes"] as? Int64 == 2 * GiB)
            #expect(row.volumeId == volumeId)
            let simulated = try #require(await h.simulator.state().volume(volumeId))
            #expect(simulated.size == 2 * GiB)
            #expect(simulated.name == "data-01")
            #expect(await h.sideEffects(volumeId).createVolume == 1)
            let recorded = try await h.db.query("""
                SELECT name || '|' || size_bytes || '|' || zone_id || '|' || disk_offering_id || '|' || state
                       || '|' || (created_by_operation = '\(id)')
                FROM volumes WHERE volume_id = '\(volumeId)'
                """)
            #expect(recorded == ["data-01|\(2 * GiB)|\(Self.zone)|\(Self.offering)|Allocated|true"])
        }
    }

    @Test func aRescuedCreateWaitsOnItsCheckpointedJobInsteadOfCreatingAgain() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(400)) { h in
            // An earlier worker sent createVolume, checkpointed, and died.
            let (volumeId, jobId) = try await h.client.createVolume(
                name: "rescued", zoneId: Self.zone, diskOfferingId: Self.offering, sizeGB: 1)
            let id = try await h.enqueue("create", request: Self.request(name: "rescued", size: GiB),
                                         checkpoint: #"{"volume_id":"\#(volumeId)","job_id":"\#(jobId)"}"#)
            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.volumeId == volumeId)
            let state = await h.simulator.state()
            #expect(state.requestCounts["createVolume"] == 1)
            #expect(state.volumes.filter { $0.name == "rescued" }.count == 1)
            #expect(try await h.db.count("SELECT count(*)::text FROM volumes WHERE volume_id = '\(volumeId)'") == 1)
        }
    }

    @Test func aCreateWhoseReplyWasLostAdoptsTheVolumeInsteadOfMakingAnother() async throws {
        try await HandlerHarness.with { h in
            // CloudStack made the volume, but the worker never learned its id.
            _ = try await h.client.createVolume(name: "orphan", zoneId: Self.zone, diskOfferingId: Self.offering, sizeGB: 1)
            let id = try await h.enqueue("create", request: Self.request(name: "orphan", size: GiB),
                                         checkpoint: #"{"request_unanswered":true}"#)
            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            let state = await h.simulator.state()
            #expect(state.requestCounts["createVolume"] == 1)
            let orphan = try #require(state.volumes.first { $0.name == "orphan" })
            #expect(row.volumeId == orphan.id)
        }
    }

    @Test(arguments: [
        (#"{"name":"x","size":1073741823,"disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)","zone_id":"\#(SimulatorConfiguration.zoneID)"}"#, "'size'"),
        (#"{"name":"  ","size":1073741824,"disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)","zone_id":"\#(SimulatorConfiguration.zoneID)"}"#, "'name'"),
        (#"{"name":"x","size":1073741824,"disk_offering_id":"nope","zone_id":"\#(SimulatorConfiguration.zoneID)"}"#, "'disk_offering_id'"),
        (#"{"name":"x","size":1073741824,"disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)"}"#, "'zone_id'"),
        (#"{"name":"x","size":"big","disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)","zone_id":"\#(SimulatorConfiguration.zoneID)"}"#, "'size'"),
        (#"{"name":"x","size":1073741824,"disk_offering_id":"\#(SimulatorConfiguration.customDiskOfferingID)","zone_id":"\#(SimulatorConfiguration.zoneID)","metadata":[1]}"#, "'metadata'"),
    ])
    func invalidRequestsFailNamingTheField(request: String, field: String) async throws {
        try await HandlerHarness.with { h in
            let worker = h.startWorker()
            let id = try await h.enqueue("create", request: request)
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "failed")
            #expect(row.errorCode == "invalid_request")
            #expect(row.error?.contains(field) == true, "\(row.error ?? "")")
            #expect(await h.simulator.state().requestCounts["createVolume"] == nil)
        }
    }

    @Test func aWrongSecretKeyFailsAtOnceAsAuthFailure() async throws {
        try await HandlerHarness.with(clientSecretKey: "not-the-secret") { h in
            let worker = h.startWorker()
            let id = try await h.enqueue("create", request: Self.request(size: GiB))
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "failed")
            #expect(row.errorCode == "cloudstack_auth_failed")
            #expect(row.attempts == 1)
            #expect(row.error?.contains("not-the-secret") == false)
            #expect(await h.simulator.state().volumes.allSatisfy { $0.type == "ROOT" })
        }
    }
}
