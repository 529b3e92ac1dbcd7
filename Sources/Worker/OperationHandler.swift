import Foundation
import PostgresNIO
import Schema

/// The seam between the queue and the work: one handler per operation type.
///
/// A handler is run when its operation is claimed, and again (with the saved checkpoint)
/// when a retry or a rescued operation is claimed, so every step must be idempotent or
/// checkpointed before its side effect.
public protocol OperationHandler: Sendable {
    func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome
}

/// What a finished handler hands back to the queue.
public struct OperationOutcome: Sendable {
    /// The `response` column, as JSON text.
    public var response: String?
    /// For `create`: the new volume's id, written to the operation's `volume_id` column.
    public var volumeId: String?
    /// Mapping-table writes that must commit in the same transaction as the terminal status,
    /// so a mapping row never exists without its completed operation and vice versa.
    public var commit: (@Sendable (PostgresConnection) async throws -> Void)?

    public init(response: String? = nil, volumeId: String? = nil,
                commit: (@Sendable (PostgresConnection) async throws -> Void)? = nil) {
        self.response = response
        self.volumeId = volumeId
        self.commit = commit
    }

    /// A completed outcome whose response is `value` encoded as JSON.
    public static func completed<Response: Encodable>(
        _ value: Response, volumeId: String? = nil,
        commit: (@Sendable (PostgresConnection) async throws -> Void)? = nil
    ) throws -> OperationOutcome {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        return OperationOutcome(response: text, volumeId: volumeId, commit: commit)
    }
}

/// An error that knows whether retrying can help. Every boundary (CloudStack, devices, NBD,
/// requests) has one such type; its `code` lands in `error_code`, its `message` in `error`.
public protocol OperationFailure: Error, Sendable {
    /// Stable, snake_case, for programs (`error_code`).
    var code: String { get }
    /// A sentence for humans naming the cause and the fix (`error`).
    var message: String { get }
    /// Transient failures are retried with backoff up to `max_attempts`; permanent ones fail at once.
    var isTransient: Bool { get }
}

/// Failures raised by the queue itself and by request validation; permanent unless made `isTransient`.
public struct QueueFailure: OperationFailure, CustomStringConvertible {
    public let code: String
    public let message: String
    public let isTransient: Bool

    public init(code: String, message: String, isTransient: Bool = false) {
        self.code = code
        self.message = message
        self.isTransient = isTransient
    }

    public var description: String { "\(code): \(message)" }

    /// A request field is missing or has the wrong shape; names the field and the fix.
    public static func invalidRequest(_ message: String) -> QueueFailure {
        QueueFailure(code: "invalid_request", message: message)
    }

    public static func noHandler(type: String) -> QueueFailure {
        QueueFailure(
            code: "unsupported_type",
            message: "this volumed has no handler for operation type '\(type)'; upgrade volumed or enqueue one of the supported types")
    }
}

/// Thrown by `OperationContext` when the operation must stop between steps.
public enum OperationInterruption: Error, Sendable {
    /// Someone asked to cancel the operation; it ends as `cancelled`.
    case cancelRequested
    /// Another worker owns the operation now (the lease expired); change nothing more.
    case leaseLost
}
