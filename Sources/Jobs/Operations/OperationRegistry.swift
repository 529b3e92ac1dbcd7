import NBD
import Logging
import Schema
import Worker

/// A handler that names the operation type it runs (its row in `volume_operation_types`,
/// migrations/0007_operation_types.sql) and is built from the worker's environment.
protocol RegisteredOperationHandler: OperationHandler {
    static var type: OperationType { get }
    /// nil: this worker cannot run the type (export and unexport without an NBD backend), and
    /// an operation of it fails with `unsupported_type`.
    init?(environment: JobsEnvironment, exportBackend: (any NBDExportBackend)?)
}

/// A handler that needs nothing beyond the environment.
protocol EnvironmentOperationHandler: RegisteredOperationHandler {
    init(environment: JobsEnvironment)
}

extension EnvironmentOperationHandler {
    init?(environment: JobsEnvironment, exportBackend: (any NBDExportBackend)?) {
        self.init(environment: environment)
    }
}

/// The one list of operation handlers, for `volumed worker`, `volumed serve`, the CLI's and
/// the HTTP API's type checks and the tests. A new type is a handler file, its line here and
/// its row in `volume_operation_types`.
public enum OperationRegistry {
    static let handlerTypes: [any RegisteredOperationHandler.Type] = [
        CreateHandler.self, AttachHandler.self, DetachHandler.self, DeleteHandler.self,
        ExportHandler.self, UnexportHandler.self, CleanupHandler.self, ResizeHandler.self,
    ]

    /// Every type this volumed has a handler for.
    public static var types: [OperationType] { handlerTypes.map { $0.type } }

    /// The handlers for `QueueWorker(handlers:)`; without `exportBackend`, export and
    /// unexport are left out.
    public static func handlers(environment: JobsEnvironment, exportBackend: (any NBDExportBackend)? = nil)
        -> [OperationType: any OperationHandler] {
        var handlers: [OperationType: any OperationHandler] = [:]
        for handlerType in handlerTypes {
            if let handler = handlerType.init(environment: environment, exportBackend: exportBackend) {
                handlers[handlerType.type] = handler
            }
        }
        environment.logger.debug("volume operation handlers ready", metadata: [
            "types": "\(handlers.keys.map(\.rawValue).sorted())",
            "appliance_vm_id": "\(environment.applianceVMId ?? "none")",
            "by_id_dir": "\(environment.resolver.directory)",
        ])
        return handlers
    }
}
