import Foundation
import Operations
import Hummingbird
import Schema
import VolumeClient

/// `GET /operations/{id}` and `GET /operations?type=&status=&volume_id=&vm_id=&limit=`
/// (newest first, a JSON array as the original answered).
struct OperationRoutes {
    let volumes: VolumeClient

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.get("operations/{id}") { _, context in
            let id = try context.operationID("id")
            guard let record = try await volumes.operation(UUID(uuidString: id)!) else {
                throw APIError.notFound("no operation with id \(id)", details: ["operation_id": .string(id)])
            }
            return JSONResponse.make(OperationShape.json(record), subject: "operation \(id)")
        }
        api.get("operations") { request, _ in
            let query = QueryFilters(request: request)
            let filter = VolumeClient.Filter(
                type: try query.oneOf("type", OperationRegistry.types.map(\.rawValue)),
                status: try query.oneOf("status", OperationStatus.allCases.map(\.rawValue)),
                volumeId: try query.uuid("volume_id"), vmId: try query.uuid("vm_id"),
                limit: try query.limit(default: 100, maximum: 1000))
            let records = try await volumes.operations(filter)
            return JSONResponse.array(records.map { (value: OperationShape.json($0), subject: "operation \($0.id.uuidString.lowercased())") })
        }
    }
}
