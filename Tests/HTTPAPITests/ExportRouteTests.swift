import Foundation
import TestSupport
import Testing

/// `POST /exports` and `DELETE /exports/{volume_id}` wait for their operation (the original's
/// synchronous contract): a failed operation answers `{error, code, details}` with a matching
/// status, a wait past its bound answers 504 naming the operation, which keeps its row.
@Suite(.serialized) struct ExportRouteTests {
    @Test func aWaitPastItsBoundAnswers504WithTheOperationId() async throws {
        // No worker runs in this world, so nothing finishes.
        try await APIWorld.with(exportWait: .seconds(1)) { world in
            let started = ContinuousClock.now
            let post = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volumeA)", "vm_id": "\#(otherVM)", "vm_name": "pgtest1", "disk_number": 1}"#)
            #expect(post.status == 504, "\(post.text)")
            #expect(ContinuousClock.now - started < .seconds(10))
            let error = try post.apiError()
            #expect(error.code == "TIMEOUT" && error.message.contains("keeps running"), "\(error.message)")
            let id = try #require(error.details["operation_id"] as? String)
            #expect(error.details["operation_url"] as? String == "/api/v1/operations/\(id)")
            #expect(try await world.db.scalar("SELECT type || ' ' || status FROM volume_operations WHERE id = '\(id)'") == "export pending")

            let delete = try await world.send(.DELETE, "/api/v1/exports/\(volumeA)")
            #expect(delete.status == 504, "\(delete.text)")
            let deleteId = try #require(try delete.apiError().details["operation_id"] as? String)
            #expect(try await world.db.scalar("SELECT type FROM volume_operations WHERE id = '\(deleteId)'") == "unexport")
        }
    }

    @Test func aFailedExportAnswersItsErrorWithAMatchingStatus() async throws {
        try await APIWorld.with(.serve) { world in
            let volume = try await world.cloudVolume() // in CloudStack, attached nowhere: nothing to export
            let post = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volume)", "vm_id": "\#(otherVM)", "vm_name": "pgtest1", "disk_number": 0}"#)
            #expect(post.status == 409, "\(post.text)")
            let error = try post.apiError()
            #expect(error.code == "CONFLICT" && error.message.contains("not attached to the appliance"), "\(error.message)")
            #expect(error.details["error_code"] as? String == "volume_not_on_appliance")
            let id = try #require(error.details["operation_id"] as? String)
            #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "failed")
            #expect(try await world.get("/api/v1/exports/\(volume)").status == 404)
        }
    }
}
