import NBD
import Devices
import CloudStack
import Foundation
import Hummingbird
import Operations
import Schema
import Logging

/// `GET /volumes/{id}` (the volume as volumed and CloudStack see it) and
/// `GET /volumes/{id}/device` (its device mapping).
struct VolumeReadRoutes {
    let reads: ReadSQL
    let cloudStack: CloudStackClient?
    let resolver: ByIdResolver?
    let logger: Logger

    /// A slow CloudStack must not hold a status read for its whole 30 s request timeout.
    static let cloudStackTimeout: Duration = .seconds(5)

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.get("volumes/{id}/device") { _, context in
            let volumeId = try context.cloudStackID("id", of: "volume")
            guard let mapping = try await reads.mapping(volumeId: volumeId) else {
                throw APIError.notFound("volume \(volumeId) is not attached through volumed (no device mapping); attach it with POST /api/v1/volumes/\(volumeId)/attach",
                                        details: ["volume_id": .string(volumeId)])
            }
            return JSONResponse.make(DeviceShape.json(mapping, resolver: resolver))
        }
        api.get("volumes/{id}") { _, context in
            try await status(of: try context.cloudStackID("id", of: "volume"))
        }
    }

    /// `{volume_id, vm_id, device_path, state, size, cloudstack_data, linux_data, last_operation}`
    /// as the original, plus `volume` (the `volumes` row), `device_mapping`, and
    /// `cloudstack_error` when CloudStack could not be asked (the rest is still answered).
    private func status(of volumeId: String) async throws -> Response {
        async let row = reads.volume(volumeId)
        async let mappingRow = reads.mapping(volumeId: volumeId)
        async let lastOperations = reads.lastOperations(volumeIds: [volumeId])
        let cloud = await cloudStackView(volumeId)
        let (volume, mapping, last) = try await (row, mappingRow, lastOperations[volumeId])

        if volume == nil && mapping == nil && last == nil {
            switch cloud {
            case .found:
                break
            case .absent:
                throw APIError.notFound("volume \(volumeId) is unknown to volumed and to CloudStack",
                                        details: ["volume_id": .string(volumeId)])
            case .unavailable(let reason):
                throw APIError.unavailable("volume \(volumeId) is unknown to volumed, and CloudStack could not be asked: \(reason)",
                                           details: ["volume_id": .string(volumeId)])
            }
        }
        var object: [String: JSONValue] = [
            "volume_id": .string(volumeId),
            "vm_id": .text(mapping?.vmId ?? cloud.volume?.virtualmachineid?.value),
            "device_path": .text(mapping?.byIdPath),
            "operation_mode": .text(mapping.map { DeviceShape.originalMode($0.operationMode) }),
            "state": .string(cloud.volume?.state ?? volume?.state ?? (mapping == nil ? "unknown" : "attached")),
            "size": .int(cloud.volume?.size ?? volume?.sizeBytes ?? mapping?.sizeBytes ?? 0),
            "cloudstack_data": (try? cloud.volume.map { try JSONValue(encoding: $0) } ?? .null) ?? .null,
            "volume": volume.map(Self.json) ?? .null,
            "device_mapping": mapping.map { DeviceShape.json($0, resolver: resolver) } ?? .null,
            "linux_data": mapping.map(linuxData) ?? .null,
            "last_operation": last.map(OperationShape.json) ?? .null,
        ]
        if case .unavailable(let reason) = cloud { object["cloudstack_error"] = .string(reason) }
        return JSONResponse.make(.object(object), subject: "volume \(volumeId)"
                                     + (last.map { " (its last operation \($0.id.uuidString.lowercased()))" } ?? ""))
    }

    private enum CloudView {
        case found(CloudStackVolume)
        case absent
        case unavailable(String)

        var volume: CloudStackVolume? {
            if case .found(let volume) = self { return volume }
            return nil
        }
    }

    private func cloudStackView(_ volumeId: String) async -> CloudView {
        guard let cloudStack else { return .unavailable("no CloudStack endpoint is configured (CLOUDSTACK_API_URL)") }
        do {
            let volumes = try await withDeadline(Self.cloudStackTimeout, onTimeout: TimedOut(after: Self.cloudStackTimeout)) { try await cloudStack.listVolumes(id: volumeId) }
            return volumes.first { $0.id.value == volumeId }.map(CloudView.found) ?? .absent
        } catch let error as CloudStackError where error.code == "cloudstack_not_found" {
            return .absent
        } catch {
            logger.warning("GET /volumes: CloudStack unavailable", metadata: ["error": "\(error)"])
            return .unavailable("\(error)")
        }
    }

    /// Where the disk is on this appliance now: the by-id link and what it resolves to.
    private func linuxData(_ mapping: DeviceMapping) -> JSONValue {
        var current: String?
        if mapping.operationMode == "appliance", let resolver {
            current = (try? resolver.currentDevice(volumeId: mapping.volumeId))??.devicePath
        }
        return .object([
            "device_path": .text(mapping.byIdPath),
            "real_device": .text(current ?? mapping.devicePath),
            "size": .number(mapping.sizeBytes.map(Int.init)),
            "state": .string(DeviceShape.linuxState(mapping, resolver: resolver)),
        ])
    }

    private static func json(_ volume: VolumeRecord) -> JSONValue {
        .object([
            "volume_id": .string(volume.volumeId),
            "name": .string(volume.name),
            "size_bytes": .int(volume.sizeBytes),
            "zone_id": .text(volume.zoneId),
            "disk_offering_id": .text(volume.diskOfferingId),
            "state": .string(volume.state),
            "created_at": .time(volume.createdAt),
            "updated_at": .time(volume.updatedAt),
        ])
    }
}

/// No answer within the time a read may wait.
struct TimedOut: Error, CustomStringConvertible {
    let after: Duration
    var description: String { "no answer within \(after)" }
}
