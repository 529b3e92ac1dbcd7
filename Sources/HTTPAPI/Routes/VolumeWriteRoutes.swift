import Hummingbird
import Operations

/// `POST /volumes`, `POST /volumes/{id}/attach`, `/attach-root`, `/detach`, `/resize`,
/// `DELETE /volumes/{id}`: each enqueues one operation (CONTRACT §3, §8).
struct VolumeWriteRoutes {
    let enqueuer: OperationEnqueuer
    let bodyLimit: Int

    static let minimumSize: Int64 = 1 << 30

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.post("volumes") { request, _ in try await create(request) }
        api.post("volumes/{id}/attach") { request, context in try await attach(request, context, asRoot: false) }
        api.post("volumes/{id}/attach-root") { request, context in try await attach(request, context, asRoot: true) }
        api.post("volumes/{id}/detach") { request, context in
            let volumeId = try context.cloudStackID("id", of: "volume")
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: false, example: #"{"force": true}"#)
            let force = try QueryFilters(request: request).flag("force") || body.bool("force", default: false)
            return try await enqueuer.enqueue(.detach, volumeId: volumeId, vmId: nil,
                                              request: force ? ["force": .bool(true)] : [:], from: request)
        }
        api.post("volumes/{id}/resize") { request, context in
            let volumeId = try context.cloudStackID("id", of: "volume")
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: #"{"size": 21474836480}"#)
            let size = try body.wholeNumber("size", in: 1...Int64.max,
                                            requirement: "the new size in bytes, at least the volume's current size; CloudStack rounds up to whole GiB")
            return try await enqueuer.enqueue(.resize, volumeId: volumeId, vmId: nil, request: ["size": .int(size)], from: request)
        }
        api.delete("volumes/{id}") { request, context in
            let volumeId = try context.cloudStackID("id", of: "volume")
            let force = try QueryFilters(request: request).flag("force")
            return try await enqueuer.enqueue(.delete, volumeId: volumeId, vmId: nil,
                                              request: force ? ["force": .bool(true)] : [:], from: request)
        }
    }

    /// `{name, size (bytes), disk_offering_id, zone_id, metadata?}`.
    private func create(_ request: Request) async throws -> Response {
        let example = #"{"name": "migration-vol-1", "size": 10737418240, "disk_offering_id": "…", "zone_id": "…"}"#
        let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: example)
        let name = try body.string("name", hint: "the CloudStack volume name, e.g. \"migration-vol-1\"")
        let size = try body.wholeNumber("size", in: Self.minimumSize...Int64.max,
                                        requirement: "a whole number of bytes ≥ 1073741824 (1 GiB); CloudStack rounds up to whole GiB")
        let offering = try body.uuid("disk_offering_id", of: "disk offering")
        let zone = try body.uuid("zone_id", of: "zone")
        var fields: [String: JSONValue] = [
            "name": .string(name), "size": .int(size), "disk_offering_id": .string(offering), "zone_id": .string(zone),
        ]
        if let metadata = try body.optionalObject("metadata") { fields["metadata"] = .object(metadata) }
        return try await enqueuer.enqueue(.create, volumeId: nil, vmId: nil, request: fields, from: request)
    }

    /// `{vm_id, vm_context_id?, export?}`; attach-root adds `attach_as: "root"` (device 0, for a
    /// test-failover VM). `vm_context_id` is recorded on the mapping for snapshot tracking.
    /// `export` (default true here): an attach that lands on the appliance also publishes the
    /// volume's NBD export, as the original daemon's attach did and its migration workflow
    /// relies on (it reads `GET /exports/{volume_id}` right after); `false` opts out.
    private func attach(_ request: Request, _ context: BasicRequestContext, asRoot: Bool) async throws -> Response {
        let volumeId = try context.cloudStackID("id", of: "volume")
        let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: #"{"vm_id": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"}"#)
        let vmId = try body.uuid("vm_id", of: "VM")
        var fields: [String: JSONValue] = asRoot ? ["attach_as": "root"] : [:]
        fields["export"] = .bool(try body.bool("export", default: true))
        if let vmContext = try body.optionalString("vm_context_id", hint: SnapshotRoutes.vmContextHint) {
            fields["vm_context_id"] = .string(vmContext)
        }
        return try await enqueuer.enqueue(.attach, volumeId: volumeId, vmId: vmId, request: fields, from: request)
    }
}
