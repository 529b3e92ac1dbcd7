import Foundation
import TestSupport
import Testing

/// The original daemon's snapshot tracking (`/snapshots/…`): recorded on `device_mappings`,
/// read and cleared per VM context, updated per volume; bad input refused naming the field,
/// with nothing written; visible to dashboards in the `volume_snapshots` view.
@Suite(.serialized) struct SnapshotRouteTests {
    static let context = "ctx-pgtest1-20250909-113839"
    static let snapshot = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"

    @Test func trackReadUpdateAndClearPerVMContext() async throws {
        try await APIWorld.with { world in
            try await world.insertMapping(volumeA, vm: world.appliance, mode: "appliance",
                                          byIdPath: "/dev/disk/by-id/virtio-3f9c2a108b1e4c6d9f00", devicePath: "/dev/vdb")
            try await world.insertMapping(volumeB, vm: world.appliance, mode: "appliance",
                                          byIdPath: "/dev/disk/by-id/virtio-4a0d3b219c2f4d7e8011", devicePath: "/dev/vdc")
            let track = try await world.post("/api/v1/snapshots/track", #"""
                {"volume_uuid": "\#(volumeA.uppercased())", "vm_context_id": "\#(Self.context)", "snapshot_id": "\#(Self.snapshot)",
                 "snapshot_name": "multi-test-failover-disk-2000-1", "disk_id": "disk-2000"}
                """#)
            #expect(track.status == 200, "\(track.text)")
            let tracked = try track.object()
            #expect(tracked["volume_uuid"] as? String == volumeA && tracked["vm_context_id"] as? String == Self.context)
            #expect(tracked["snapshot_id"] as? String == Self.snapshot && tracked["message"] is String)

            // The other volume of the context has no snapshot yet (tracked with status creating).
            let second = try await world.post("/api/v1/snapshots/track",
                #"{"volume_uuid": "\#(volumeB)", "vm_context_id": "\#(Self.context)", "snapshot_id": "\#(UUID().uuidString)", "snapshot_status": "creating"}"#)
            #expect(second.status == 200, "\(second.text)")

            let read = try await world.get("/api/v1/snapshots/vm/\(Self.context)").object()
            #expect(read["vm_context_id"] as? String == Self.context && (read["count"] as? NSNumber)?.intValue == 2)
            let snapshots = try #require(read["snapshots"] as? [[String: Any]])
            let first = try #require(snapshots.first { $0["volume_uuid"] as? String == volumeA })
            #expect(first["snapshot_id"] as? String == Self.snapshot && first["snapshot_status"] as? String == "ready")
            #expect(isRFC3339(first["snapshot_created_at"]) && first["operation_mode"] as? String == "oma")
            #expect(first["device_path"] as? String == "/dev/disk/by-id/virtio-3f9c2a108b1e4c6d9f00")
            #expect(snapshots.first { $0["volume_uuid"] as? String == volumeB }?["snapshot_status"] as? String == "creating")

            let put = try await world.send(.PUT, "/api/v1/snapshots/\(volumeA)", json: #"{"snapshot_status": "rollback_complete"}"#)
            #expect(put.status == 200, "\(put.text)")
            #expect(try put.object()["volume_uuid"] as? String == volumeA)
            #expect(try await world.db.scalar("SELECT snapshot_status || ' ' || snapshot_id FROM volume_snapshots WHERE volume_id = '\(volumeA)'")
                    == "rollback_complete \(Self.snapshot)")

            let clear = try await world.send(.DELETE, "/api/v1/snapshots/vm/\(Self.context)")
            #expect(clear.status == 200, "\(clear.text)")
            #expect((try clear.object()["snapshots_cleared"] as? NSNumber)?.intValue == 2)
            let after = try #require(try await world.get("/api/v1/snapshots/vm/\(Self.context)").object()["snapshots"] as? [[String: Any]])
            #expect(after.count == 2 && after.allSatisfy { $0["snapshot_status"] as? String == "none" && $0["snapshot_id"] == nil })
            #expect((try await world.send(.DELETE, "/api/v1/snapshots/vm/\(Self.context)").object()["snapshots_cleared"] as? NSNumber)?.intValue == 0)
            // A context nobody tracked is an empty list, as in the original.
            let none = try await world.get("/api/v1/snapshots/vm/ctx-unknown").object()
            #expect((none["count"] as? NSNumber)?.intValue == 0 && (none["snapshots"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("bad snapshot requests are refused naming the field, and nothing changes", arguments: [
        ("POST", "/api/v1/snapshots/track", #"{"volume_uuid": "\#(volumeA)", "snapshot_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"}"#, 400, "vm_context_id"),
        ("POST", "/api/v1/snapshots/track", #"{"volume_uuid": "vol-1", "vm_context_id": "ctx", "snapshot_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"}"#, 400, "volume_uuid"),
        ("POST", "/api/v1/snapshots/track", #"{"volume_uuid": "\#(volumeA)", "vm_context_id": "ctx", "snapshot_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f", "snapshot_status": "done"}"#, 400, "snapshot_status"),
        ("POST", "/api/v1/snapshots/track", #"{"volume_uuid": "\#(volumeA)", "vm_context_id": "a\nb", "snapshot_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"}"#, 400, "vm_context_id"),
        ("POST", "/api/v1/snapshots/track", #"{"volume_uuid": "\#(volumeB)", "vm_context_id": "ctx", "snapshot_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"}"#, 404, "volume_uuid"),
        ("PUT", "/api/v1/snapshots/\(volumeA)", #"{}"#, 400, "snapshot_status"),
        ("PUT", "/api/v1/snapshots/\(volumeA)", #"{"snapshot_status": "rolled_back"}"#, 400, "snapshot_status"),
        ("PUT", "/api/v1/snapshots/\(volumeB)", #"{"snapshot_status": "ready"}"#, 404, "volume_uuid"),
        ("PUT", "/api/v1/snapshots/not-a-volume", #"{"snapshot_status": "ready"}"#, 400, "volume_uuid"),
    ])
    func badRequest(method: String, path: String, body: String, status: Int, field: String) async throws {
        try await APIWorld.with { world in
            try await world.insertMapping(volumeA, vm: otherVM, mode: "remote", byIdPath: nil, devicePath: nil)
            let answer = try await world.send(method == "PUT" ? .PUT : .POST, path, json: body)
            #expect(answer.status == status, "\(answer.text)")
            let error = try answer.apiError()
            #expect(error.message.contains(field) || error.details[field] != nil || error.details["field"] as? String == field, "\(answer.text)")
            #expect(try await world.db.scalar("SELECT snapshot_status || ' ' || coalesce(vm_context_id, '-') FROM device_mappings") == "none -")
        }
    }

    /// volumed shares no database with the engine, so an attach may name the VM context
    /// (CONTRACT §3); the worker records it on the mapping, and the snapshot routes find it.
    @Test func anAttachCarryingAVMContextRecordsItOnTheMapping() async throws {
        try await APIWorld.with(.serve) { world in
            let volume = try await world.cloudVolume()
            let bad = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(otherVM)", "vm_context_id": ""}"#)
            #expect(try bad.status == 400 && bad.apiError().details["field"] as? String == "vm_context_id", "\(bad.text)")
            let attach = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(world.appliance)", "vm_context_id": "\#(Self.context)"}"#)
            #expect(attach.status == 201, "\(attach.text)")
            #expect(try await world.finished(try #require(try attach.object()["id"] as? String)) == "completed")
            let read = try await world.get("/api/v1/snapshots/vm/\(Self.context)").object()
            let snapshots = try #require(read["snapshots"] as? [[String: Any]])
            #expect(snapshots.count == 1 && snapshots.first?["volume_uuid"] as? String == volume, "\(read)")
            #expect(snapshots.first?["snapshot_status"] as? String == "none" && snapshots.first?["operation_mode"] as? String == "oma")
            // Through the queue's other door, a plain INSERT: the worker refuses a bad context
            // before any CloudStack call, naming the field.
            let sqlAttach = try #require(try await world.db.scalar("""
                INSERT INTO volume_operations (type, volume_id, vm_id, request)
                VALUES ('attach', '\(volume)', '\(world.appliance)', '{"vm_context_id": "two\\nlines"}') RETURNING id
                """))
            #expect(try await world.finished(sqlAttach) == "failed")
            #expect(try await world.db.scalar("SELECT error_code || ': ' || error FROM volume_operations WHERE id = '\(sqlAttach)'")?
                .hasPrefix("invalid_request: field 'vm_context_id'") == true)
            // A later attach without a context (verified, not repeated) keeps the recorded one.
            let again = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(world.appliance)"}"#)
            #expect(try await world.finished(try #require(try again.object()["id"] as? String)) == "completed")
            #expect(try await world.db.scalar("SELECT vm_context_id FROM volume_snapshots WHERE volume_id = '\(volume)'") == Self.context)
        }
    }

    @Test func theDatabaseRefusesAnUnknownSnapshotStatus() async throws {
        try await APIWorld.with { world in
            try await world.insertMapping(volumeA, vm: otherVM, mode: "remote", byIdPath: nil, devicePath: nil)
            await #expect(throws: (any Error).self) {
                try await world.db.query("UPDATE device_mappings SET snapshot_status = 'rolled_back'")
            }
            #expect(try await world.db.scalar("SELECT snapshot_status FROM device_mappings") == "none")
        }
    }
}
