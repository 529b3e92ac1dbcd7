import Foundation
import PostgresNIO

/// One row of `volume_operations` as clients, the API and the CLI see it.
/// JSON columns are kept as their text so nothing is lost or reordered in transit.
public struct OperationRecord: Sendable, Equatable {
    public var id: UUID
    public var type: String
    public var status: OperationStatus
    public var volumeId: String?
    public var vmId: String?
    public var request: String
    public var response: String?
    public var error: String?
    public var errorCode: String?
    public var idempotencyKey: String?
    public var priority: Int
    public var attempts: Int
    public var maxAttempts: Int
    public var runAfter: Date
    public var claimedBy: String?
    public var leaseExpiresAt: Date?
    public var checkpoint: String?
    public var cancelRequestedAt: Date?
    public var createdAt: Date
    public var startedAt: Date?
    public var updatedAt: Date
    public var completedAt: Date?

    /// The select list that `init(row:)` decodes.
    public static let columns = """
        id, type, status, volume_id, vm_id, request::text AS request, response::text AS response,
        error, error_code, idempotency_key, priority::int AS priority, attempts, max_attempts, run_after,
        claimed_by, lease_expires_at, checkpoint::text AS checkpoint, cancel_requested_at,
        created_at, started_at, updated_at, completed_at
        """

    public init(row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        id = try cells["id"].decode(UUID.self)
        type = try cells["type"].decode(String.self)
        let statusText = try cells["status"].decode(String.self)
        guard let status = OperationStatus(rawValue: statusText) else {
            throw OperationRecordError(message: "operation \(id) has unknown status \(statusText)")
        }
        self.status = status
        volumeId = try cells["volume_id"].decode(String?.self)
        vmId = try cells["vm_id"].decode(String?.self)
        request = try cells["request"].decode(String.self)
        response = try cells["response"].decode(String?.self)
        error = try cells["error"].decode(String?.self)
        errorCode = try cells["error_code"].decode(String?.self)
        idempotencyKey = try cells["idempotency_key"].decode(String?.self)
        priority = try cells["priority"].decode(Int.self)
        attempts = try cells["attempts"].decode(Int.self)
        maxAttempts = try cells["max_attempts"].decode(Int.self)
        runAfter = try cells["run_after"].decode(Date.self)
        claimedBy = try cells["claimed_by"].decode(String?.self)
        leaseExpiresAt = try cells["lease_expires_at"].decode(Date?.self)
        checkpoint = try cells["checkpoint"].decode(String?.self)
        cancelRequestedAt = try cells["cancel_requested_at"].decode(Date?.self)
        createdAt = try cells["created_at"].decode(Date.self)
        startedAt = try cells["started_at"].decode(Date?.self)
        updatedAt = try cells["updated_at"].decode(Date.self)
        completedAt = try cells["completed_at"].decode(Date?.self)
    }
}

public struct OperationRecordError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
