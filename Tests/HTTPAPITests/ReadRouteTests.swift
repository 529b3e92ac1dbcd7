import CloudStackSimulator
import Foundation
import TestSupport
import Testing

/// The GET routes read the tables (and, for one volume, CloudStack) and answer the
/// original daemon's shapes; unknown ids are 404, malformed ones 400.
@Suite(.serialized) struct ReadRouteTests {
    @Test func operationsAreReadByIdAndListedWithValidatedFilters() async throws {
        try await APIWorld.with { world in
            let attach = try await world.post("/api/v1/volumes/\(volumeA)/attach", #"{"vm_id": "\#(otherVM)"}"#).object()
            _ = try await world.post("/api/v1/volumes/\(volumeB)/detach")
            let id = try #require(attach["id"] as? String)

            let one = try await world.get("/api/v1/operations/\(id)")
            #expect(one.status == 200)
            let operation = try one.object()
            #expect(operationKeys.isSubset(of: Set(operation.keys)))
            #expect(operation["id"] as? String == id && operation["type"] as? String == "attach")

            let all = try await world.get("/api/v1/operations").array()
            #expect(all.count == 2)
            #expect(all.first?["type"] as? String == "detach", "newest first")
            let attaches = try await world.get("/api/v1/operations?type=attach&status=pending&vm_id=\(otherVM)").array()
            #expect(attaches.map { $0["id"] as? String } == [id])
            #expect(try await world.get("/api/v1/operations?volume_id=\(volumeB)&limit=1").array().count == 1)

            for (query, field) in [("type=defragment", "type"), ("status=done", "status"), ("volume_id=vol-1", "volume_id"),
                                   ("limit=0", "limit"), ("limit=many", "limit")] {
                let bad = try await world.get("/api/v1/operations?\(query)")
                #expect(bad.status == 400, "\(query)")
                #expect(try bad.apiError().details["field"] as? String == field)
            }
            let unknown = try await world.get("/api/v1/operations/\(UUID().uuidString.lowercased())")
            #expect(unknown.status == 404)
            #expect(try unknown.apiError().code == "NOT_FOUND")
            let malformed = try await world.get("/api/v1/operations/op-123")
            #expect(malformed.status == 400)
        }
    }

    @Test func aDeviceMappingIsReadByVolumeAndByDevicePathInTheOriginalShape() async throws {
        try await APIWorld.with { world in
            let volume = randomVolumeId()
            let link = try world.plugDisk(volume)
            try await world.insertMapping(volume, vm: world.appliance, mode: "appliance", byIdPath: link, devicePath: "/dev/vdc")

            let byVolume = try await world.get("/api/v1/volumes/\(volume)/device")
            #expect(byVolume.status == 200, "\(byVolume.text)")
            let device = try byVolume.object()
            #expect(deviceKeys.isSubset(of: Set(device.keys)))
            #expect(device["volume_id"] as? String == volume && device["volume_uuid"] as? String == volume)
            #expect(device["device_path"] as? String == link, "the stable by-id path, not /dev/vdc")
            #expect(device["operation_mode"] as? String == "oma")
            #expect(device["cloudstack_state"] as? String == "attached" && device["linux_state"] as? String == "detected")
            #expect((device["size"] as? NSNumber)?.int64Value == 1 << 30)
            #expect(isRFC3339(device["last_sync"]) && isRFC3339(device["created_at"]))

            // The original's client sends the path URL-encoded as one segment; plain segments work too.
            let encoded = link.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            for path in ["/api/v1/devices/\(encoded)/volume", "/api/v1/devices\(link)/volume", "/api/v1/devices/%2Fdev%2Fvdc/volume"] {
                let answer = try await world.get(path)
                #expect(answer.status == 200, "\(path): \(answer.text)")
                #expect(try answer.object()["volume_id"] as? String == volume, "\(path)")
            }

            // The link gone (detached behind volumed's back): the mapping says so.
            try FileManager.default.removeItem(atPath: link)
            #expect(try await world.get("/api/v1/volumes/\(volume)/device").object()["linux_state"] as? String == "missing")

            let none = try await world.get("/api/v1/volumes/\(randomVolumeId())/device")
            #expect(none.status == 404)
            #expect(try none.apiError().code == "NOT_FOUND")
            #expect(try await world.get("/api/v1/devices/%2Fdev%2Fvdz/volume").status == 404)
            #expect(try await world.get("/api/v1/volumes/not-a-uuid/device").status == 400)
        }
    }

    @Test func aVMsVolumesAreListedWithTheirLastOperation() async throws {
        try await APIWorld.with { world in
            let first = randomVolumeId(), second = randomVolumeId()
            try await world.insertMapping(first, vm: otherVM, mode: "remote", byIdPath: nil, devicePath: nil)
            try await world.insertMapping(second, vm: otherVM, mode: "remote", byIdPath: nil, devicePath: nil)
            try await world.insertMapping(randomVolumeId(), vm: applianceVM, mode: "remote", byIdPath: nil, devicePath: nil)
            let detach = try await world.post("/api/v1/volumes/\(second)/detach").object()

            let volumes = try await world.get("/api/v1/vms/\(otherVM)/volumes").array()
            #expect(Set(volumes.compactMap { $0["volume_id"] as? String }) == [first, second])
            #expect(volumes.allSatisfy { $0["operation_mode"] as? String == "failover" && $0["vm_id"] as? String == otherVM })
            let withOperation = try #require(volumes.first { $0["volume_id"] as? String == second })
            #expect((withOperation["last_operation"] as? [String: Any])?["id"] as? String == detach["id"] as? String)
            #expect(volumes.first { $0["volume_id"] as? String == first }?["last_operation"] is NSNull)

            #expect(try await world.get("/api/v1/vms/\(UUID().uuidString.lowercased())/volumes").array().isEmpty)
            #expect(try await world.get("/api/v1/vms/vm-1/volumes").status == 400)
        }
    }

    @Test func aVolumeIsShownWithItsCloudStackDataMappingAndLastOperation() async throws {
        try await APIWorld.with { world in
            // A volume CloudStack has, attached (as far as volumed knows) to another VM.
            let volume = try await world.cloudVolume()
            try await world.insertMapping(volume, vm: otherVM, mode: "remote", byIdPath: nil, devicePath: nil)
            let detach = try await world.post("/api/v1/volumes/\(volume)/detach").object()

            let answer = try await world.get("/api/v1/volumes/\(volume)")
            #expect(answer.status == 200, "\(answer.text)")
            let status = try answer.object()
            #expect(status["volume_id"] as? String == volume && status["vm_id"] as? String == otherVM)
            let cloud = try #require(status["cloudstack_data"] as? [String: Any])
            #expect(cloud["id"] as? String == volume && cloud["type"] as? String == "DATADISK")
            #expect(status["state"] as? String == cloud["state"] as? String)
            #expect((status["size"] as? NSNumber)?.int64Value == 1 << 30)
            #expect((status["device_mapping"] as? [String: Any])?["operation_mode"] as? String == "failover")
            #expect((status["last_operation"] as? [String: Any])?["id"] as? String == detach["id"] as? String)
            #expect(status["cloudstack_error"] == nil)

            // Known to CloudStack only: still answered.
            let cloudOnly = try await world.cloudVolume()
            #expect(try await world.get("/api/v1/volumes/\(cloudOnly)").object()["last_operation"] is NSNull)
            // Known to neither.
            let unknown = try await world.get("/api/v1/volumes/\(randomVolumeId())")
            #expect(unknown.status == 404)
            #expect(try unknown.apiError().code == "NOT_FOUND")

            // CloudStack failing: what volumed knows is still answered, and the failure named.
            await world.simulator.setFaults(SimulatorFaults(failRate: 1))
            let degraded = try await world.get("/api/v1/volumes/\(volume)")
            #expect(degraded.status == 200)
            let degradedStatus = try degraded.object()
            #expect(degradedStatus["cloudstack_data"] is NSNull)
            #expect((degradedStatus["cloudstack_error"] as? String)?.contains("cloudstack_internal_error") == true, "\(degraded.text)")
            #expect(degradedStatus["device_mapping"] is [String: Any])
            let unanswerable = try await world.get("/api/v1/volumes/\(randomVolumeId())")
            #expect(unanswerable.status == 503)
            #expect(try unanswerable.apiError().code == "SERVICE_UNAVAILABLE")
        }
    }

    /// With `Prefer: respond-async` (RFC 7240) the export routes answer at once with the
    /// enqueued operation (without it they wait for the worker: `ExportRouteTests`).
    @Test func exportsAreEnqueuedAsynchronouslyAndRead() async throws {
        try await APIWorld.with { world in
            let async = [("Prefer", "respond-async")]
            let post = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volumeA)", "vm_id": "\#(otherVM)", "vm_name": "pgtest1", "disk_number": 1}"#,
                                            headers: async)
            #expect(post.status == 201, "\(post.text)")
            #expect(post.headers["preference-applied"] == "respond-async")
            let export = try post.object()
            #expect(export["type"] as? String == "export" && export["vm_id"] as? String == otherVM)
            let request = try #require(export["request"] as? [String: Any])
            #expect(request["vm_name"] as? String == "pgtest1" && (request["disk_unit_number"] as? NSNumber)?.intValue == 1)
            #expect(request["job_id"] == nil)
            let withJob = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volumeB)", "vm_id": "\#(otherVM)", "vm_name": "pgtest1", "disk_number": 0, "job_id": "job-9"}"#,
                                               headers: [("Prefer", "wait=5, Respond-Async")])
            #expect((try withJob.object()["request"] as? [String: Any])?["job_id"] as? String == "job-9")
            let bad = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volumeA)", "vm_id": "\#(otherVM)", "vm_name": "v", "disk_number": -1}"#)
            #expect(bad.status == 400)
            #expect(try bad.apiError().details["field"] as? String == "disk_number")
            let delete = try await world.send(.DELETE, "/api/v1/exports/\(volumeA)", headers: async)
            #expect(delete.status == 201)
            #expect(try delete.object()["type"] as? String == "unexport")

            #expect(try await world.get("/api/v1/exports/\(volumeA)").status == 404)
            try await world.db.query("""
                INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name)
                VALUES ('\(otherVM)', 1, '\(volumeA)', 'migration-vol-\(volumeA)', '/dev/disk/by-id/virtio-3f9c2a108b1e4c6d9f00', 10809, 'job-1', 'pgtest1')
                """)
            let one = try await world.get("/api/v1/exports/\(volumeA)").object()
            #expect(one["export_name"] as? String == "migration-vol-\(volumeA)")
            #expect((one["port"] as? NSNumber)?.intValue == 10809 && one["status"] as? String == "active")
            #expect(one["device_path"] as? String == "/dev/disk/by-id/virtio-3f9c2a108b1e4c6d9f00")
            #expect((one["metadata"] as? [String: Any])?["vm_name"] as? String == "pgtest1")

            let list = try await world.get("/api/v1/exports?status=active&vm_name=pgtest1").object()
            #expect((list["count"] as? NSNumber)?.intValue == 1)
            #expect((list["exports"] as? [[String: Any]])?.first?["volume_id"] as? String == volumeA)
            #expect((try await world.get("/api/v1/exports?status=removed").object()["count"] as? NSNumber)?.intValue == 0)
            #expect(try await world.get("/api/v1/exports?status=gone").status == 400)
        }
    }
}
