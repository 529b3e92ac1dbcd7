import Devices
import Foundation
import Hummingbird
import Operations

/// `GET /devices/{device_path}/volume` (which volume a device is) and
/// `GET /vms/{vm_id}/volumes` (the volumes attached to a VM through volumed).
struct DeviceRoutes {
    let reads: ReadSQL
    let resolver: ByIdResolver?

    func add(to api: RouterGroup<BasicRequestContext>) {
        // The device path may arrive percent-encoded as one segment (`%2Fdev%2Fdisk%2Fby-id%2Fvirtio-…`,
        // what the original's client sends) or as plain segments (`/devices/dev/vdb/volume`).
        api.get("devices/**") { _, context in
            var segments = context.parameters.getCatchAll().map(String.init)
            guard segments.count >= 2, segments.removeLast() == "volume" else {
                throw APIError.notFound("use GET /api/v1/devices/{device_path}/volume with the device path URL-encoded, e.g. /api/v1/devices/%2Fdev%2Fvdb/volume")
            }
            let joined = segments.map { $0.removingPercentEncoding ?? $0 }.joined(separator: "/")
            let path = joined.hasPrefix("/") ? joined : "/" + joined
            guard let mapping = try await reads.mapping(devicePath: path) else {
                throw APIError.notFound("no volume attached through volumed has device \(path) (looked at by-id links and current devices)",
                                        details: ["device_path": .string(path)])
            }
            return JSONResponse.make(DeviceShape.json(mapping, resolver: resolver))
        }
        api.get("vms/{vm_id}/volumes") { _, context in
            let vmId = try context.cloudStackID("vm_id", of: "VM")
            let mappings = try await reads.mappings(vmId: vmId)
            let last = try await reads.lastOperations(volumeIds: mappings.map(\.volumeId))
            let volumes: [JSONValue] = mappings.map { mapping in
                .object([
                    "volume_id": .string(mapping.volumeId),
                    "vm_id": .string(mapping.vmId),
                    "device_path": .text(mapping.byIdPath),
                    "operation_mode": .string(DeviceShape.originalMode(mapping.operationMode)),
                    "state": "attached",
                    "size": .int(mapping.sizeBytes ?? 0),
                    "attached_at": .time(mapping.attachedAt), // the original client's VolumeMapping reads it
                    "last_operation": last[mapping.volumeId].map(OperationShape.json) ?? .null,
                ])
            }
            return JSONResponse.make(.array(volumes))
        }
    }
}
