import Foundation
import Hummingbird
import Schema
import VolumeClient

/// The original daemon answered `POST /exports` and `DELETE /exports/{volume_id}` only once
/// the export existed (or was gone). volumed still enqueues the operation — queued,
/// checkpointed, crash-safe like every other — and then waits for it through the completion
/// channel (`VolumeClient.waitForCompletion`), at most `wait`, before answering:
///
/// - completed: `answer(record)` (the export object / `{message}`);
/// - failed: `{error, code, details}` with a status matching the failure's `error_code`;
/// - cancelled: 409;
/// - still running after `wait`: 504 with the operation id in `details`, to follow with
///   `GET /operations/{id}` (the operation keeps running);
/// - `Prefer: respond-async` (RFC 7240): today's `201` with the operation, at once.
struct ExportCompletion: Sendable {
    let enqueuer: OperationEnqueuer
    let wait: Duration

    static let prefer = HTTPFields.Element.Name("Prefer")!
    static let preferenceApplied = HTTPFields.Element.Name("Preference-Applied")!

    func run(_ type: OperationType, volumeId: String, vmId: String?, request fields: [String: JSONValue], from request: Request,
             answer: @Sendable (OperationRecord) async throws -> Response) async throws -> Response {
        let record = try await enqueuer.enqueueRecord(type, volumeId: volumeId, vmId: vmId, request: fields, from: request)
        if Self.prefersAsync(request) {
            var response = JSONResponse.make(OperationShape.json(record), status: .created)
            response.headers[Self.preferenceApplied] = "respond-async"
            return response
        }
        let finished: OperationRecord
        do {
            finished = try await enqueuer.volumes.waitForCompletion(record.id, timeout: wait)
        } catch let error as VolumeClientError where error.kind == .timeout {
            let id = record.id.uuidString.lowercased()
            let status = (try? await enqueuer.volumes.operation(record.id))?.status.rawValue ?? record.status.rawValue
            throw APIError(
                status: .gatewayTimeout, code: "TIMEOUT",
                message: "the \(type.rawValue) operation \(id) did not finish within \(Self.seconds(wait)) s; it keeps running: "
                    + "follow it with GET /api/v1/operations/\(id) (or raise VOLUMED_HTTP_EXPORT_WAIT)",
                details: ["operation_id": .string(id), "operation_status": .string(status),
                          "operation_url": .string("/api/v1/operations/\(id)")])
        }
        switch finished.status {
        case .completed:
            return try await answer(finished)
        case .cancelled:
            throw APIError(status: .conflict, code: "CONFLICT",
                           message: "the \(type.rawValue) operation \(finished.id.uuidString.lowercased()) was cancelled before it finished",
                           details: Self.details(finished))
        default:
            throw Self.failure(finished)
        }
    }

    /// A failed operation as an API error: its sentence, and a status from its `error_code`.
    static func failure(_ record: OperationRecord) -> APIError {
        let code = record.errorCode ?? ""
        let (status, apiCode): (HTTPResponse.Status, String)
        switch code {
        case "invalid_request", "invalid_volume_id", "invalid_export_name", "invalid_device_path":
            (status, apiCode) = (.badRequest, "INVALID_REQUEST")
        case "volume_not_on_appliance", "export_conflict":
            (status, apiCode) = (.conflict, "CONFLICT")
        case _ where code.hasPrefix("cloudstack_"):
            (status, apiCode) = (.unprocessableContent, "CLOUDSTACK_ERROR")
        default:
            (status, apiCode) = (.internalServerError, "INTERNAL_ERROR")
        }
        let message = record.error ?? "the \(record.type) operation \(record.id.uuidString.lowercased()) failed (\(code))"
        return APIError(status: status, code: apiCode, message: message, details: details(record))
    }

    static func details(_ record: OperationRecord) -> [String: JSONValue] {
        ["operation_id": .string(record.id.uuidString.lowercased()), "operation_status": .string(record.status.rawValue),
         "error_code": .text(record.errorCode)]
    }

    /// RFC 7240: `Prefer` holds comma-separated preferences, each a token with optional
    /// `=value` and `;parameters`; tokens are case-insensitive; the header may repeat.
    static func prefersAsync(_ request: Request) -> Bool {
        request.headers[values: prefer].contains { header in
            header.split(separator: ",").contains { preference in
                let token = preference.split(separator: ";", maxSplits: 1).first?.split(separator: "=", maxSplits: 1).first ?? ""
                return token.trimmingCharacters(in: .whitespaces).lowercased() == "respond-async"
            }
        }
    }

    static func seconds(_ duration: Duration) -> Int64 { duration.components.seconds }
}
