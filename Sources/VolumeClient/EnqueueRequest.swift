import Schema

/// One operation to enqueue (CONTRACT §2, §3).
public struct EnqueueRequest: Sendable {
    public var type: OperationType
    public var volumeId: String?
    public var vmId: String?
    /// The `request` object as JSON text.
    public var request: String
    public var idempotencyKey: String?
    public var priority: Int16
    public var maxAttempts: Int

    public init(type: OperationType, volumeId: String? = nil, vmId: String? = nil, request: String = "{}",
                idempotencyKey: String? = nil, priority: Int16 = 0, maxAttempts: Int = 5) {
        self.type = type
        self.volumeId = volumeId
        self.vmId = vmId
        self.request = request
        self.idempotencyKey = idempotencyKey
        self.priority = priority
        self.maxAttempts = maxAttempts
    }
}

public struct VolumeClientError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case rejected, conflict, notFound, timeout }
    public let kind: Kind
    public let message: String
    public var description: String { message }
}
