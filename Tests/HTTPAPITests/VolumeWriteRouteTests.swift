import Foundation
import DevServices
import TestSupport
import Testing

/// The write routes enqueue exactly one row each and answer 201 with the operation object;
/// bad input is refused naming the field, and nothing is written.
@Suite(.serialized) struct VolumeWriteRouteTests {
    @Test func createEnqueuesACreateOperationAndAnswersTheOperationObject() async throws {
        try await APIWorld.with { world in
            let answer = try await world.post("/api/v1/volumes", createBody(name: "disk-1", size: 5 << 30))
            #expect(answer.status == 201, "\(answer.text)")
            let operation = try answer.object()
            #expect(operationKeys.isSubset(of: Set(operation.keys)))
            #expect(operation["type"] as? String == "create")
            #expect(operation["status"] as? String == "pending")
            #expect(operation["volume_id"] is NSNull && operation["response"] is NSNull && operation["completed_at"] is NSNull)
            #expect(isRFC3339(operation["created_at"]) && isRFC3339(operation["updated_at"]))
            let request = try #require(operation["request"] as? [String: Any])
            #expect(request["name"] as? String == "disk-1")
            #expect((request["size"] as? NSNumber)?.int64Value == 5 << 30)
            #expect(request["zone_id"] as? String == zone)
            #expect((request["metadata"] as? [String: Any])?["purpose"] as? String == "test")
            // The row is what the answer says, and nothing else was written.
            let id = try #require(operation["id"] as? String)
            let stored = jsonObject(try await world.db.scalar("SELECT request::text FROM volume_operations WHERE id = '\(id)' AND type = 'create'"))
            #expect(stored?["disk_offering_id"] as? String == offering)
            #expect(try await world.operationCount() == 1)
        }
    }

    @Test("a bad create body is refused naming the field, and nothing is enqueued", arguments: [
        (#"{"size": 1073741824, "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)"}"#, "name", "is required"),
        (#"{"name": 7, "size": 1073741824, "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)"}"#, "name", "must be a string"),
        (#"{"name": "d", "size": "10G", "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)"}"#, "size", "1073741824 (1 GiB)"),
        (#"{"name": "d", "size": 536870912, "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)"}"#, "size", "≥ 1073741824"),
        (#"{"name": "d", "size": 1073741824.5, "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)"}"#, "size", "whole number"),
        (#"{"name": "d", "size": 1073741824, "disk_offering_id": "gold", "zone_id": "\#(zone)"}"#, "disk_offering_id", "CloudStack UUID"),
        (#"{"name": "d", "size": 1073741824, "disk_offering_id": "\#(offering)"}"#, "zone_id", "is required"),
        (#"{"name": "d", "size": 1073741824, "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)", "metadata": [1]}"#, "metadata", "JSON object"),
    ])
    func badCreateBody(body: String, field: String, reason: String) async throws {
        try await APIWorld.with { world in
            let answer = try await world.post("/api/v1/volumes", body)
            #expect(answer.status == 400, "\(answer.text)")
            let error = try answer.apiError()
            #expect(error.code == "INVALID_REQUEST")
            #expect(error.details["field"] as? String == field, "\(answer.text)")
            #expect(error.message.contains(field) && error.message.contains(reason), "\(error.message)")
            #expect(try await world.operationCount() == 0)
        }
    }

    @Test("a body that is not a JSON object is refused", arguments: ["", "not json", "[1, 2]", "\"text\""])
    func notAnObject(body: String) async throws {
        try await APIWorld.with { world in
            let answer = try await world.post("/api/v1/volumes", body)
            #expect(answer.status == 400, "\(answer.text)")
            let error = try answer.apiError()
            #expect(error.code == "INVALID_REQUEST")
            #expect(error.message.contains("JSON object") || error.message.contains("empty"), "\(error.message)")
            #expect(try await world.operationCount() == 0)
        }
    }

    @Test func aBodyOverTheLimitIsRefusedWith413() async throws {
        try await APIWorld.with { world in
            let padding = String(repeating: "x", count: 70 * 1024)
            let answer = try await world.post("/api/v1/volumes", #"{"name": "d", "size": 1073741824, "pad": "\#(padding)"}"#)
            #expect(answer.status == 413, "\(answer.text.prefix(200))")
            let error = try answer.apiError()
            #expect(error.code == "INVALID_REQUEST")
            #expect(error.message.contains("65536 bytes"))
            #expect(try await world.operationCount() == 0)
            // Also on a route that never reads its body.
            let detach = try await world.post("/api/v1/volumes/\(randomVolumeId())/detach", #"{"pad": "\#(padding)"}"#)
            #expect(detach.status == 413)
            #expect(try await world.operationCount() == 0)
        }
    }

    @Test func attachAndAttachRootEnqueueAttachWithTheVMColumn() async throws {
        try await APIWorld.with { world in
            let volume = randomVolumeId()
            let attach = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(otherVM)", "volume_id": "\#(volume)"}"#)
            #expect(attach.status == 201, "\(attach.text)")
            let plain = try attach.object()
            #expect(plain["type"] as? String == "attach" && plain["volume_id"] as? String == volume && plain["vm_id"] as? String == otherVM)
            // The original daemon's attach exported the volume when it landed on the appliance.
            #expect((plain["request"] as? [String: Any])?.keys.sorted() == ["export"])
            #expect((plain["request"] as? [String: Any])?["export"] as? Bool == true)
            let optedOut = try await world.post("/api/v1/volumes/\(randomVolumeId())/attach", #"{"vm_id": "\#(otherVM)", "export": false}"#)
            #expect(try (optedOut.object()["request"] as? [String: Any])?["export"] as? Bool == false, "\(optedOut.text)")
            let badExport = try await world.post("/api/v1/volumes/\(randomVolumeId())/attach", #"{"vm_id": "\#(otherVM)", "export": "yes"}"#)
            #expect(try badExport.status == 400 && badExport.apiError().details["field"] as? String == "export", "\(badExport.text)")

            let root = try await world.post("/api/v1/volumes/\(volume.uppercased())/attach-root", #"{"vm_id": "\#(otherVM)"}"#)
            #expect(root.status == 201, "\(root.text)")
            let rootOperation = try root.object()
            #expect(rootOperation["volume_id"] as? String == volume, "ids are stored lower-case, as CloudStack writes them")
            #expect((rootOperation["request"] as? [String: Any])?["attach_as"] as? String == "root")
            #expect(try await world.db.count("SELECT count(*)::text FROM volume_operations WHERE type = 'attach' AND vm_id = '\(otherVM)'") == 3)
        }
    }

    @Test func attachRefusesABadPathIdAndABadVMId() async throws {
        try await APIWorld.with { world in
            let badPath = try await world.post("/api/v1/volumes/vol-123/attach", #"{"vm_id": "\#(otherVM)"}"#)
            #expect(badPath.status == 400)
            #expect(try badPath.apiError().details["field"] as? String == "id")
            let missing = try await world.post("/api/v1/volumes/\(volumeA)/attach", "{}")
            #expect(missing.status == 400)
            #expect(try missing.apiError().message.contains("'vm_id' is required"))
            let wrongType = try await world.post("/api/v1/volumes/\(volumeA)/attach", #"{"vm_id": 12}"#)
            #expect(wrongType.status == 400)
            #expect(try wrongType.apiError().message.contains("'vm_id' must be a string"))
            #expect(try await world.operationCount() == 0)
        }
    }

    @Test func detachAndDeleteEnqueueTheirOperationsWithForceWhenAsked() async throws {
        try await APIWorld.with { world in
            let detach = try await world.post("/api/v1/volumes/\(volumeA)/detach")
            #expect(detach.status == 201, "\(detach.text)")
            #expect(try detach.object()["type"] as? String == "detach")
            let forced = try await world.post("/api/v1/volumes/\(volumeB)/detach", #"{"force": true}"#)
            #expect((try forced.object()["request"] as? [String: Any])?["force"] as? Bool == true)
            let delete = try await world.send(.DELETE, "/api/v1/volumes/\(volumeA)?force=true")
            #expect(delete.status == 201, "\(delete.text)")
            let deleted = try delete.object()
            #expect(deleted["type"] as? String == "delete" && deleted["volume_id"] as? String == volumeA)
            #expect((deleted["request"] as? [String: Any])?["force"] as? Bool == true)
            let badForce = try await world.send(.DELETE, "/api/v1/volumes/\(volumeA)?force=maybe")
            #expect(badForce.status == 400)
            #expect(try badForce.apiError().details["field"] as? String == "force")
            #expect(try await world.operationCount() == 3)
        }
    }

    /// `POST /volumes/{id}/resize {size}` and `volumed enqueue resize --size` enqueue the same
    /// `resize` row; a size that is not a positive whole number is refused naming the field.
    @Test func resizeEnqueuesAResizeWithTheSizeFromTheRouteAndTheCommandLine() async throws {
        try await APIWorld.with { world in
            let answer = try await world.post("/api/v1/volumes/\(volumeA)/resize", #"{"size": 21474836480}"#)
            #expect(answer.status == 201, "\(answer.text)")
            let operation = try answer.object()
            #expect(operation["type"] as? String == "resize" && operation["volume_id"] as? String == volumeA)
            #expect(((operation["request"] as? [String: Any])?["size"] as? NSNumber)?.int64Value == 20 << 30)
            for body in [#"{}"#, #"{"size": 0}"#, #"{"size": "20G"}"#, #"{"size": 1.5}"#] {
                let bad = try await world.post("/api/v1/volumes/\(volumeA)/resize", body)
                #expect(bad.status == 400, "\(body): \(bad.text)")
                #expect(try bad.apiError().details["field"] as? String == "size", "\(body): \(bad.text)")
            }
            #expect(try await world.operationCount() == 1)

            let volumed = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
            let id = try await ProcessRunner.run([volumed, "enqueue", "resize", "--volume-id", volumeB, "--size", "\(3 << 30)",
                                                  "--database-url", world.db.urlText]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await world.db.scalar("SELECT type || ' ' || volume_id || ' ' || request::text FROM volume_operations WHERE id = '\(id)'")
                    == "resize \(volumeB) {\"size\": \(3 << 30)}")
            let refused = try await ProcessRunner.run([volumed, "enqueue", "resize", "--volume-id", volumeB, "--size", "0",
                                                       "--database-url", world.db.urlText], check: false)
            #expect(refused.status != 0 && refused.output.contains("--size"), "\(refused.output)")
            #expect(try await world.operationCount() == 2)
        }
    }

    @Test func anIdempotencyKeyReturnsTheFirstOperationAndConflictsOnOtherParameters() async throws {
        try await APIWorld.with { world in
            let key = [("Idempotency-Key", "replication-42-disk-0")]
            let first = try await world.post("/api/v1/volumes/\(volumeA)/attach", #"{"vm_id": "\#(otherVM)"}"#, headers: key)
            let again = try await world.post("/api/v1/volumes/\(volumeA)/attach", #"{"vm_id": "\#(otherVM)"}"#, headers: key)
            #expect(first.status == 201 && again.status == 201)
            #expect(try first.object()["id"] as? String == (try again.object()["id"] as? String))
            let other = try await world.post("/api/v1/volumes/\(volumeA)/attach", #"{"vm_id": "\#(applianceVM)"}"#, headers: key)
            #expect(other.status == 409, "\(other.text)")
            let conflict = try other.apiError()
            #expect(conflict.code == "CONFLICT" && conflict.message.contains("different parameters"))
            // The database's own CHECK names the field when the API has no rule of its own.
            let long = try await world.post("/api/v1/volumes/\(volumeB)/detach", headers: [("Idempotency-Key", String(repeating: "k", count: 300))])
            #expect(long.status == 400)
            #expect(try long.apiError().message.contains("idempotency_key must be 1 to 200 characters"), "\(long.text)")
            #expect(try await world.operationCount() == 1)
        }
    }

    @Test func cleanupEnqueuesACleanupWithTheContractRequestShape() async throws {
        try await APIWorld.with { world in
            let body = #"{"test_vm_id": "\#(otherVM)", "volume_id": "\#(volumeA)", "delete_vm": true, "force_clean": true, "oma_vm_id": "\#(applianceVM)"}"#
            let answer = try await world.post("/api/v1/cleanup/test-failover", body)
            #expect(answer.status == 201, "\(answer.text)")
            let operation = try answer.object()
            #expect(operation["type"] as? String == "cleanup" && operation["volume_id"] as? String == volumeA)
            #expect(operation["vm_id"] as? String == applianceVM, "the appliance the volume goes back to (oma_vm_id)")
            let request = try #require(operation["request"] as? [String: Any])
            #expect(request["test_vm_id"] as? String == otherVM)
            #expect(request["delete_vm"] as? Bool == true && request["force"] as? Bool == true)
            #expect(Set(request.keys) == ["test_vm_id", "delete_vm", "force"])

            let bad = try await world.post("/api/v1/cleanup/test-failover", #"{"test_vm_id": "vm-1", "volume_id": "\#(volumeA)"}"#)
            #expect(bad.status == 400)
            #expect(try bad.apiError().details["field"] as? String == "test_vm_id")
            let badFlag = try await world.post("/api/v1/cleanup/test-failover", #"{"test_vm_id": "\#(otherVM)", "volume_id": "\#(volumeA)", "delete_vm": "yes"}"#)
            #expect(try badFlag.apiError().details["field"] as? String == "delete_vm")
            #expect(try await world.operationCount() == 1)
        }
    }

    @Test func unknownRoutesAndMethodsAnswerTheErrorShape() async throws {
        try await APIWorld.with { world in
            let unknown = try await world.get("/api/v1/nothing-here")
            #expect(unknown.status == 404)
            #expect(try unknown.apiError().code == "NOT_FOUND")
            let wrongMethod = try await world.send(.PUT, "/api/v1/volumes")
            #expect(wrongMethod.status == 404)
            #expect(try wrongMethod.apiError().code == "NOT_FOUND")
        }
    }
}
