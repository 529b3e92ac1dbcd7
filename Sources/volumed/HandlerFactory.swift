import Foundation
import Jobs
import Logging
import Schema
import Worker

/// The worker's handlers from the environment and flags.
enum HandlerFactory {
    static func make(options: WorkerOptions, configuration: WorkerConfiguration, logger: Logger) async throws -> WorkerHandlers {
        let settings: WorkerHandlers.Settings
        do {
            settings = try WorkerHandlers.Settings.fromEnvironment(
                options.environment, applianceVMId: configuration.applianceVMId,
                byIdDirectory: options.value(options.byIdDir, "VOLUMED_BY_ID_DIR"),
                apiURL: options.value(options.cloudstackApiUrl, "CLOUDSTACK_API_URL"))
        } catch let failure as any OperationFailure {
            throw ValidationErrorText(failure.message)
        }
        return try await WorkerHandlers.make(settings, logger: logger)
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
