import NBD
import Devices
import CloudStack
import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

/// Every handler a production worker runs, built from the settings an operator gives
/// (CONTRACT §7): the CloudStack client, the by-id resolver and the NBD export backend.
public struct WorkerHandlers: Sendable {
    public let handlers: [OperationType: any OperationHandler]
    public let backend: any NBDExportBackend
    public let resolver: ByIdResolver
    /// What the handlers were built from (CloudStack client, resolver, appliance), for the reconciler.
    public let environment: OperationEnvironment
    let httpClient: HTTPClient

    /// The client the handlers use, for read-only callers (the HTTP API's volume view and health).
    public var cloudStack: CloudStackClient { environment.cloudStack }

    public struct Settings: Sendable {
        public var cloudStack: CloudStackConfiguration
        public var byIdDirectory: String
        public var applianceVMId: String?
        public var exports: ExportBackendSettings
        public var deviceWaitTimeout: Duration
        /// How long one CloudStack async job is waited on per attempt (`VOLUMED_CLOUDSTACK_JOB_TIMEOUT`).
        public var jobTimeout: Duration
        /// `VOLUMED_ALLOW_FILE_DEVICES`: by-id links may lead to regular files (the simulator's
        /// backing files) for export and reconcile. Tests and demos only; off by default.
        public var allowsRegularFileDevices: Bool

        public init(cloudStack: CloudStackConfiguration, byIdDirectory: String, applianceVMId: String?,
                    exports: ExportBackendSettings, deviceWaitTimeout: Duration = .seconds(60),
                    jobTimeout: Duration = .seconds(JobTimeoutSetting.defaultSeconds), allowsRegularFileDevices: Bool = false) {
            self.allowsRegularFileDevices = allowsRegularFileDevices
            self.cloudStack = cloudStack
            self.byIdDirectory = byIdDirectory
            self.applianceVMId = applianceVMId
            self.exports = exports
            self.deviceWaitTimeout = deviceWaitTimeout
            self.jobTimeout = jobTimeout
        }

        /// From the environment; names the missing variable.
        public static func fromEnvironment(_ environment: [String: String], applianceVMId: String?, byIdDirectory: String?,
                                           apiURL: String?) throws -> Settings {
            func required(_ name: String, _ override: String? = nil) throws -> String {
                if let override, !override.isEmpty { return override }
                guard let value = environment[name], !value.isEmpty else {
                    throw QueueFailure(code: "invalid_configuration",
                                       message: "\(name) is not set; set it (see README, Configuration)", isTransient: false)
                }
                return value
            }
            let cloudStack = CloudStackConfiguration(
                apiURL: try required("CLOUDSTACK_API_URL", apiURL), apiKey: try required("CLOUDSTACK_API_KEY"),
                secretKey: try required("CLOUDSTACK_SECRET_KEY"))
            return Settings(cloudStack: cloudStack,
                            byIdDirectory: byIdDirectory ?? environment["VOLUMED_BY_ID_DIR"] ?? "/dev/disk/by-id",
                            applianceVMId: applianceVMId, exports: try ExportBackendSettings(environment: environment),
                            jobTimeout: try JobTimeoutSetting.fromEnvironment(environment),
                            allowsRegularFileDevices: try allowsFileDevices(environment))
        }
    }

    /// `VOLUMED_ALLOW_FILE_DEVICES`: `1`/`true` on, unset/`0`/`false` off, anything else refused.
    static func allowsFileDevices(_ environment: [String: String]) throws -> Bool {
        let name = ByIdResolver.allowFileDevicesVariable
        switch environment[name]?.lowercased() {
        case nil, "", "0", "false", "no": return false
        case "1", "true", "yes": return true
        case let other?:
            throw QueueFailure(code: "invalid_configuration",
                               message: "\(name) must be 1 or 0 (true or false), got \"\(other)\"; leave it unset in production")
        }
    }

    public static func make(_ settings: Settings, logger: Logger) async throws -> WorkerHandlers {
        let backend = try await ExportBackendFactory.makeBackend(settings.exports)
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let resolver = ByIdResolver(directory: settings.byIdDirectory, allowsRegularFiles: settings.allowsRegularFileDevices)
        if settings.allowsRegularFileDevices {
            logger.warning("\(ByIdResolver.allowFileDevicesVariable) is on: by-id links may lead to regular files (tests and demos only)")
        }
        let cloudStack = CloudStackClient(configuration: settings.cloudStack, httpClient: httpClient, logger: logger)
        let environment = OperationEnvironment(
            cloudStack: cloudStack,
            resolver: resolver, applianceVMId: settings.applianceVMId, deviceWaitTimeout: settings.deviceWaitTimeout,
            jobTimeout: settings.jobTimeout, exportRemover: BackendExportRemover(backend: backend),
            exporter: ExportPublisher(backend: backend), logger: logger)
        return WorkerHandlers(handlers: environment.handlers(exportBackend: backend), backend: backend, resolver: resolver, environment: environment, httpClient: httpClient)
    }

    /// The reconciler for `volumed reconcile`, the periodic pass and `POST /admin/force-sync`.
    public func reconciler(database: PostgresClient, logger: Logger) -> Reconciler {
        Reconciler(environment: environment, database: database, exportBackend: backend, logger: logger)
    }

    public func shutdown() async {
        try? await httpClient.shutdown()
    }
}
