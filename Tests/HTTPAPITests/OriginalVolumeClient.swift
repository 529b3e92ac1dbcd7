import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The original daemon's Go callers, re-told in Swift for these tests, request for request:
/// each method sends what `common.VolumeClient` (sha/common/volume_client.go) or the snapshot
/// service (sha/failover/multi_volume_snapshot_service.go) sends — method, path, JSON body,
/// `Content-Type` only with a body, no token — accepts only the status codes that code
/// accepts, and decodes with the Go structs' field names and types (`OriginalClientShapes`).
/// Anything else is a `Refused`, as the Go code would return an error.
struct OriginalVolumeClient: Sendable {
    let baseURL: String

    struct Refused: Error, CustomStringConvertible {
        let description: String
    }

    struct CreateVolumeRequest: Encodable {
        let name: String
        let size: Int64
        let disk_offering_id: String
        let zone_id: String
        let metadata: [String: String]?
    }

    struct CreateNBDExportRequest: Encodable {
        let volume_id: String
        let vm_name: String
        let vm_id: String
        let disk_number: Int
    }

    // MARK: common.VolumeClient

    func createVolume(_ request: CreateVolumeRequest) async throws -> GoVolumeOperation {
        try await volumeOperation(.POST, "/api/v1/volumes", request)
    }

    func attachVolume(_ volumeID: String, vmID: String) async throws -> GoVolumeOperation {
        try await volumeOperation(.POST, "/api/v1/volumes/\(volumeID)/attach", ["vm_id": vmID])
    }

    func attachVolumeAsRoot(_ volumeID: String, vmID: String) async throws -> GoVolumeOperation {
        try await volumeOperation(.POST, "/api/v1/volumes/\(volumeID)/attach-root", ["vm_id": vmID])
    }

    func detachVolume(_ volumeID: String) async throws -> GoVolumeOperation {
        try await volumeOperation(.POST, "/api/v1/volumes/\(volumeID)/detach", Optional<[String: String]>.none)
    }

    /// The body carries `oma_vm_id` and `force_clean: false`, as the Go client's map does.
    func cleanupTestFailover(testVMID: String, volumeID: String, shaVMID: String, deleteVM: Bool) async throws -> GoVolumeOperation {
        struct Body: Encodable {
            let test_vm_id, volume_id, oma_vm_id: String
            let delete_vm, force_clean: Bool
        }
        return try await volumeOperation(.POST, "/api/v1/cleanup/test-failover",
                                         Body(test_vm_id: testVMID, volume_id: volumeID, oma_vm_id: shaVMID, delete_vm: deleteVM, force_clean: false))
    }

    func deleteVolume(_ volumeID: String) async throws -> GoVolumeOperation {
        try await volumeOperation(.DELETE, "/api/v1/volumes/\(volumeID)", Optional<[String: String]>.none)
    }

    func getOperation(_ operationID: String) async throws -> GoVolumeOperation {
        let (status, body) = try await send(.GET, "/api/v1/operations/\(operationID)", Optional<[String: String]>.none)
        guard status == 200 else { throw errorResponse(status, body) }
        return try decode(GoVolumeOperation.self, body)
    }

    func getVolumeDevice(_ volumeID: String) async throws -> GoDeviceMapping {
        let (status, body) = try await send(.GET, "/api/v1/volumes/\(volumeID)/device", Optional<[String: String]>.none)
        guard status == 200 else { throw errorResponse(status, body) }
        return try decode(GoDeviceMapping.self, body)
    }

    /// 404 is "no volumes", as the Go client reads it.
    func listVolumes(_ vmID: String) async throws -> [GoVolumeMapping] {
        let (status, body) = try await send(.GET, "/api/v1/vms/\(vmID)/volumes", Optional<[String: String]>.none)
        if status == 404 { return [] }
        guard status == 200 else { throw errorResponse(status, body) }
        return try decode([GoVolumeMapping].self, body)
    }

    /// The Go client polls every 2 s; the poll interval is its own business, so a shorter
    /// one here only makes the test quicker.
    func waitForCompletion(_ operationID: String, timeout: Duration = .seconds(120)) async throws -> GoVolumeOperation {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            guard let operation = try? await getOperation(operationID) else { continue } // "retrying", as Go does
            switch operation.status {
            case "completed": return operation
            case "failed": throw Refused(description: "operation failed: \(operation.error)")
            case "cancelled": throw Refused(description: "operation was cancelled")
            default: continue
            }
        }
        throw Refused(description: "operation timeout or cancelled: \(operationID)")
    }

    func healthCheck() async throws {
        let (status, _) = try await send(.GET, "/health", Optional<[String: String]>.none)
        guard status == 200 else { throw Refused(description: "volume daemon unhealthy: status \(status)") }
    }

    func createNBDExport(_ request: CreateNBDExportRequest) async throws -> GoNBDExportInfo {
        let (status, body) = try await send(.POST, "/api/v1/exports", request)
        guard status == 200 || status == 201 else { throw errorResponse(status, body) }
        return try decode(GoNBDExportInfo.self, body)
    }

    func deleteNBDExport(_ volumeID: String) async throws {
        let (status, body) = try await send(.DELETE, "/api/v1/exports/\(volumeID)", Optional<[String: String]>.none)
        guard status == 200 || status == 204 else { throw errorResponse(status, body) }
    }

    func getNBDExport(_ volumeID: String) async throws -> GoNBDExportInfo {
        let (status, body) = try await send(.GET, "/api/v1/exports/\(volumeID)", Optional<[String: String]>.none)
        if status == 404 { throw Refused(description: "NBD export not found for volume: \(volumeID)") }
        guard status == 200 else { throw errorResponse(status, body) }
        return try decode(GoNBDExportInfo.self, body)
    }

    /// The Go client decodes a bare array here; its own server sent `{exports, count}` (see the README).
    func listNBDExportsBody(vmName: String?, status wanted: String?) async throws -> String {
        var parameters: [String] = []
        if let vmName { parameters.append("vm_name=\(vmName)") }
        if let wanted { parameters.append("status=\(wanted)") }
        let path = "/api/v1/exports" + (parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&"))
        let (status, body) = try await send(.GET, path, Optional<[String: String]>.none)
        guard status == 200 else { throw errorResponse(status, body) }
        return body
    }

    // MARK: failover.MultiVolumeSnapshotService

    func trackSnapshot(volumeUUID: String, vmContextID: String, snapshotID: String, snapshotName: String, diskID: String) async throws {
        let body = ["volume_uuid": volumeUUID, "vm_context_id": vmContextID, "snapshot_id": snapshotID,
                    "snapshot_name": snapshotName, "disk_id": diskID]
        let (status, answer) = try await send(.POST, "/api/v1/snapshots/track", body)
        guard (200..<300).contains(status) else { throw Refused(description: "Volume Daemon API returned status \(status): \(answer)") }
    }

    /// `getVMSnapshots`: a plain GET, 200 only.
    func getVMSnapshots(_ vmContextID: String) async throws -> [GoVolumeSnapshot] {
        let (status, body) = try await send(.GET, "/api/v1/snapshots/vm/\(vmContextID)", Optional<[String: String]>.none)
        guard status == 200 else { throw Refused(description: "Volume Daemon API returned status \(status)") }
        return try decode(GoSnapshotsResponse.self, body).snapshots
    }

    /// `clearVMSnapshotTracking`: DELETE without a body, 200 only.
    func clearVMSnapshotTracking(_ vmContextID: String) async throws {
        let (status, _) = try await send(.DELETE, "/api/v1/snapshots/vm/\(vmContextID)", Optional<[String: String]>.none)
        guard status == 200 else { throw Refused(description: "Volume Daemon API returned status \(status)") }
    }

    /// `updateSnapshotStatus` through `callVolumeDaemonAPI`: any 2xx.
    func updateSnapshotStatus(_ volumeUUID: String, status wanted: String) async throws {
        let (status, _) = try await send(.PUT, "/api/v1/snapshots/\(volumeUUID)", ["snapshot_status": wanted])
        guard (200..<300).contains(status) else { throw Refused(description: "Volume Daemon API returned status \(status)") }
    }

    /// `getVolumeDevicePath`: 200 only, `{device_path}`.
    func getVolumeDevicePath(_ volumeUUID: String) async throws -> String {
        struct Mapping: Decodable {
            let devicePath: String
            init(from decoder: any Decoder) throws {
                devicePath = try decoder.container(keyedBy: AnyKey.self).goString(AnyKey("device_path"))
            }
        }
        let (status, body) = try await send(.GET, "/api/v1/volumes/\(volumeUUID)/device", Optional<[String: String]>.none)
        guard status == 200 else { throw Refused(description: "Volume Daemon API returned status \(status)") }
        return try decode(Mapping.self, body).devicePath
    }

    // MARK: doRequest / doVolumeOperation / handleErrorResponse

    private func volumeOperation(_ method: HTTPMethod, _ path: String, _ body: (some Encodable)?) async throws -> GoVolumeOperation {
        let (status, answer) = try await send(method, path, body)
        guard status == 201 else { throw errorResponse(status, answer) }
        return try decode(GoVolumeOperation.self, answer)
    }

    func send(_ method: HTTPMethod, _ path: String, _ body: (some Encodable)?) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30)) // the Go client's 30 s
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 22)))
    }

    private func errorResponse(_ status: Int, _ body: String) -> Refused {
        guard let error = try? JSONDecoder().decode(GoErrorResponse.self, from: Data(body.utf8)) else {
            return Refused(description: "volume operation failed with status \(status): \(body)")
        }
        return Refused(description: "volume operation failed (\(error.code)): \(error.error) [status \(status)]")
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body.utf8))
        } catch {
            throw Refused(description: "failed to decode \(type) response: \(error); body: \(body)")
        }
    }
}
