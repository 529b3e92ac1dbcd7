import Foundation
import Hummingbird
import Schema
import VolumeClient

/// The one write the API makes: a row in `volume_operations`, through the existing enqueue
/// path (`VolumeClient.enqueue` → `volume_operation_enqueue`), answered `201` with the
/// operation object. A worker does the rest; the API never calls CloudStack for a write.
///
/// An `Idempotency-Key` header becomes the row's `idempotency_key`: a retried request gets
/// the first operation back, the same key with other parameters is a 409.
struct OperationEnqueuer: Sendable {
    let volumes: VolumeClient

    /// `HTTPFields.Element` is HTTPTypes' `HTTPField`, which Hummingbird does not re-export by name.
    static let idempotencyKey = HTTPFields.Element.Name("Idempotency-Key")!

    func enqueue(_ type: OperationType, volumeId: String?, vmId: String?, request: [String: JSONValue],
                 from httpRequest: Request) async throws -> Response {
        let record = try await enqueueRecord(type, volumeId: volumeId, vmId: vmId, request: request, from: httpRequest)
        return JSONResponse.make(OperationShape.json(record), status: .created)
    }

    /// The enqueued operation as read back (a repeated idempotency key: the first one).
    func enqueueRecord(_ type: OperationType, volumeId: String?, vmId: String?, request: [String: JSONValue],
                       from httpRequest: Request) async throws -> OperationRecord {
        let key = httpRequest.headers[Self.idempotencyKey]
        let requestText: String
        do {
            requestText = try JSONValue.object(request).encodedText()
        } catch {
            // Never store a request the API cannot show again (it would read back as null).
            throw APIError.invalid("the request could not be encoded as JSON (\(error)); send a flatter object")
        }
        let enqueue = EnqueueRequest(type: type, volumeId: volumeId, vmId: vmId, request: requestText, idempotencyKey: key)
        let id: UUID
        do {
            id = try await volumes.enqueue(enqueue)
        } catch let error as VolumeClientError {
            switch error.kind {
            case .conflict: throw APIError.conflict(error.message)
            default: throw APIError.invalid(error.message)
            }
        }
        guard let record = try await volumes.operation(id) else {
            throw APIError.internalError("operation \(id) was enqueued but could not be read back")
        }
        return record
    }
}
