import Foundation
import Operations
import Logging
import Schema
import Worker

/// The handlers' settings from the environment and flags.
enum HandlerFactory {
    static func settings(options: WorkerOptions, configuration: WorkerConfiguration) throws -> WorkerHandlers.Settings {
        do {
            return try WorkerHandlers.Settings.fromEnvironment(
                options.environment, applianceVMId: configuration.applianceVMId,
                byIdDirectory: options.value(options.byIdDir, "VOLUMED_BY_ID_DIR"),
                apiURL: options.value(options.cloudstackApiUrl, "CLOUDSTACK_API_URL"))
        } catch let failure as any OperationFailure {
            throw ValidationErrorText(failure.message)
        }
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
