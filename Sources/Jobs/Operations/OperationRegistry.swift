import NBD
import Logging
import Schema
import Worker

/// A handler that names the operation type it runs (its row in `volume_operation_types`,
/// migrations/0007_operation_types.sql) and is built from the worker's environment.
protocol RegisteredOperationHandler: OperationHandler {
    static var type: OperationType { get }
    /// What a running operation of this type does before its first checkpoint (`OperationStep`).
    static var firstStep: String { get }
    /// Where its checkpoint keeps `StepProgress` values (key nil: the whole checkpoint), and
    /// the command each one sends, in the order `OperationStep` looks for a step under way.
    static var checkpointedSteps: [(key: String?, command: String)] { get }
    /// What a running operation is doing, from its checkpoint and the text of the step under
    /// way found through `checkpointedSteps` (nil: none); nil means "as at its first step".
    static func describe(_ checkpoint: [String: Any], stepText: String?) -> String?
    /// nil: this worker cannot run the type (export and unexport without an NBD backend), and
    /// an operation of it fails with `unsupported_type`.
    init?(environment: OperationEnvironment, exportBackend: (any NBDExportBackend)?)
}

extension RegisteredOperationHandler {
    static var checkpointedSteps: [(key: String?, command: String)] { [] }
    static func describe(_ checkpoint: [String: Any], stepText: String?) -> String? { stepText }
}

/// A handler that needs nothing beyond the environment.
protocol EnvironmentOperationHandler: RegisteredOperationHandler {
    init(environment: OperationEnvironment)
}

extension EnvironmentOperationHandler {
    init?(environment: OperationEnvironment, exportBackend: (any NBDExportBackend)?) {
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

    /// The handler of `type`, for what depends on the type alone.
    static func handlerType(of type: String) -> (any RegisteredOperationHandler.Type)? {
        handlerTypes.first { $0.type.rawValue == type }
    }

    /// Every type this volumed has a handler for.
    public static var types: [OperationType] { handlerTypes.map { $0.type } }

    /// The handlers for `QueueWorker(handlers:)`; without `exportBackend`, export and
    /// unexport are left out.
    public static func handlers(environment: OperationEnvironment, exportBackend: (any NBDExportBackend)? = nil)
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
