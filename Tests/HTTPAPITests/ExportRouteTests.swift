import DevServices
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

    @Test("a bad export wait is refused naming the variable", arguments: ["0", "soon", "3601"])
    func aBadExportWaitIsRefused(value: String) async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("serve-wait-\(UUID().uuidString.prefix(6)).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let serve = try ChildProcess(executable: URL(fileURLWithPath: ServeProcessTests.volumed), arguments: ["serve"], outputPath: log,
                                     environment: ["VOLUMED_HTTP_EXPORT_WAIT": value, "DATABASE_URL": "postgres://localhost/none"])
        #expect(await serve.waitForExit() != 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("VOLUMED_HTTP_EXPORT_WAIT (--export-wait) must be a whole number of seconds"), "\(output)")
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
