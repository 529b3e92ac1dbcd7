import Primitives
import CloudStack
import Foundation
import Schema
import Worker

/// Request parsing shared by the handlers. Shape errors surface as `DecodingError`, which
/// the queue turns into `invalid_request` naming the field; value errors are raised here as
/// `invalid_request` naming the field and the allowed values.
enum RequestDecoding {
    static func decode<Request: Decodable>(_ type: Request.Type, from operation: ClaimedOperation) throws -> Request {
        try JSONDecoder().decode(Request.self, from: Data(operation.request.utf8))
    }

    /// The operation's `volume_id` column; the database already requires it for every type
    /// but `create`, and requires it to be a UUID.
    static func volumeId(of operation: ClaimedOperation) throws -> CloudStackID {
        guard let volumeId = operation.volumeId, VolumeUUID.isUUID(volumeId) else {
            throw QueueFailure.invalidRequest("a \(operation.type) operation needs the volume_id column set to a CloudStack volume UUID")
        }
        return CloudStackID(volumeId)
    }

    /// The operation's `vm_id` column, required for `attach`.
    static func vmId(of operation: ClaimedOperation) throws -> CloudStackID {
        guard let vmId = operation.vmId, VolumeUUID.isUUID(vmId) else {
            throw QueueFailure.invalidRequest("a \(operation.type) operation needs the vm_id column set to a CloudStack VM UUID")
        }
        return CloudStackID(vmId)
    }

    static func requireUUID(_ value: String, field: String) throws {
        guard VolumeUUID.isUUID(value) else {
            throw QueueFailure.invalidRequest(
                "field '\(field)' must be a CloudStack UUID (8-4-4-4-12 hex digits), got \(quotedForMessage(value))")
        }
    }
}
