import Hummingbird

/// NBD exports: `POST /exports` and `DELETE /exports/{volume_id}` enqueue `export` /
/// `unexport` and, as the original daemon, answer once it is done (`ExportCompletion`): `201`
/// with the export object / `200` `{message}`. `GET /exports/{volume_id}` and
/// `GET /exports?…` read `vm_export_mappings`.
struct ExportRoutes {
    let completion: ExportCompletion
    let reads: ReadSQL
    let bodyLimit: Int

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.post("exports") { request, _ in
            let example = #"{"volume_id": "…", "vm_id": "…", "vm_name": "source-vm", "disk_number": 0}"#
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: example)
            let volumeId = try body.uuid("volume_id", of: "volume")
            let vmId = try body.uuid("vm_id", of: "source VM")
            let vmName = try body.string("vm_name", hint: "the source VM's name, e.g. \"pgtest1\"")
            let disk = try body.wholeNumber("disk_number", in: 0...Int64(Int32.max),
                                            requirement: "the disk's unit number on the source VM, a whole number from 0")
            var fields: [String: JSONValue] = ["vm_name": .string(vmName), "disk_unit_number": .int(disk)]
            if let job = try body.optionalString("job_id", hint: "the replication job's id") { fields["job_id"] = .string(job) }
            return try await completion.run(.export, volumeId: volumeId, vmId: vmId, request: fields, from: request) { [reads] record in
                guard let export = try await reads.export(volumeId: volumeId) else {
                    throw APIError.internalError("the export operation \(record.id.uuidString.lowercased()) completed but volume \(volumeId) has no export row; see GET /api/v1/operations/\(record.id.uuidString.lowercased())")
                }
                return JSONResponse.make(ExportShape.json(export), status: .created)
            }
        }
        api.delete("exports/{volume_id}") { request, context in
            let volumeId = try context.cloudStackID("volume_id", of: "volume")
            return try await completion.run(.unexport, volumeId: volumeId, vmId: nil, request: [:], from: request) { record in
                JSONResponse.make(.object([
                    "message": "NBD export deleted successfully", "volume_id": .string(volumeId),
                    "export_name": .embedded(record.response).field("export_name"),
                    "operation_id": .string(record.id.uuidString.lowercased()),
                ]))
            }
        }
        api.get("exports/{volume_id}") { _, context in
            let volumeId = try context.cloudStackID("volume_id", of: "volume")
            guard let export = try await reads.export(volumeId: volumeId) else {
                throw APIError.notFound("volume \(volumeId) has no NBD export; POST /api/v1/exports to create one",
                                        details: ["volume_id": .string(volumeId)])
            }
            return JSONResponse.make(ExportShape.json(export))
        }
        api.get("exports") { request, _ in
            let query = QueryFilters(request: request)
            let exports = try await reads.exports(
                volumeId: try query.uuid("volume_id"), status: try query.oneOf("status", ["active", "removed"]),
                vmName: query.text("vm_name"), limit: try query.limit(default: 100, maximum: 1000))
            return JSONResponse.make(.object(["exports": .array(exports.map(ExportShape.json)), "count": .int(Int64(exports.count))]))
        }
    }
}
