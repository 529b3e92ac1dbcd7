import Foundation
import PostgresNIO

/// An operation a worker has claimed: what a handler needs to run it.
public struct ClaimedOperation: Sendable {
    public let id: UUID
    /// The raw type text; the worker maps it to a handler (unknown types fail clearly).
    public let type: String
    public let volumeId: String?
    public let vmId: String?
    /// The `request` column as JSON text.
    public let request: String
    /// The `checkpoint` column as JSON text, set by an earlier attempt of this operation.
    public let checkpoint: String?
    /// Including this one.
    public let attempts: Int
    public let maxAttempts: Int
    public let claimedBy: String
    public let createdAt: Date
    /// This claim's secret: every statement that changes the row presents it (see `QueueSQL`).
    /// A later claim of the same operation, even by the same worker, gets another one.
    public let claimToken: String

    public static let columns = """
        id, type, volume_id, vm_id, request::text AS request, checkpoint::text AS checkpoint,
        attempts, max_attempts, claimed_by, created_at, claim_token
        """

    public init(row: PostgresRow) throws {
        let (id, type, volumeId, vmId, request, checkpoint, attempts, maxAttempts, claimedBy, createdAt, claimToken) =
            try row.decode((UUID, String, String?, String?, String, String?, Int, Int, String, Date, String).self)
        self.init(id: id, type: type, volumeId: volumeId, vmId: vmId, request: request, checkpoint: checkpoint,
                  attempts: attempts, maxAttempts: maxAttempts, claimedBy: claimedBy, createdAt: createdAt,
                  claimToken: claimToken)
    }

    public init(id: UUID, type: String, volumeId: String?, vmId: String?, request: String, checkpoint: String?,
                attempts: Int, maxAttempts: Int, claimedBy: String, createdAt: Date, claimToken: String) {
        self.id = id
        self.type = type
        self.volumeId = volumeId
        self.vmId = vmId
        self.request = request
        self.checkpoint = checkpoint
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.claimedBy = claimedBy
        self.createdAt = createdAt
        self.claimToken = claimToken
    }
}
