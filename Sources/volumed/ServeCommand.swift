import Foundation
import ArgumentParser
import Daemon
import HTTPAPI
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker and the HTTP API (the original Volume Daemon's /api/v1, /metrics, /health) in one process.",
        discussion: """
            SIGTERM/SIGINT: the API stops, the worker finishes in-flight operations within 25 s and releases the rest.
            With VOLUMED_HTTP_TOKEN (or --http-token) set, every route but GET /health needs Authorization: Bearer <token>.
            With VOLUMED_WEBHOOK_SECRET set, POST /cloudstack/webhook takes CloudStack 4.20+ webhook deliveries signed with it.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var options: WorkerOptions
    @OptionGroup var periodicReconcile: PeriodicReconcileOptions
    @Option(help: "host:port to listen on (default: $VOLUMED_HTTP_ADDR or \(HTTPSettings.defaultAddress)).") var httpAddr: String?
    @Option(help: "Bearer token required by every route but GET /health (default: $VOLUMED_HTTP_TOKEN; unset: no auth).")
    var httpToken: String?
    @Option(help: "Seconds POST/DELETE /api/v1/exports wait for the export before answering 504 (default: $VOLUMED_HTTP_EXPORT_WAIT or 60).")
    var exportWait: String?

    func validate() throws {
        _ = try httpSettings()
    }

    func httpSettings() throws -> HTTPSettings {
        do {
            var settings = try HTTPSettings(address: options.value(httpAddr, "VOLUMED_HTTP_ADDR") ?? HTTPSettings.defaultAddress,
                                            token: options.value(httpToken, "VOLUMED_HTTP_TOKEN"))
            settings.exportWait = try ExportWaitSetting.parse(options.value(exportWait, ExportWaitSetting.variable))
            // From the environment only: a secret on the command line shows in `ps`.
            settings.webhookSecret = ProcessInfo.processInfo.environment["VOLUMED_WEBHOOK_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
            return settings
        } catch let error as HTTPSettingsError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        Volumed.bootstrapLogging()
        let logger = Logger(label: "volumed")
        let registry = MetricsSetup.registry
        let worker = try await options.workerServices(database: database, periodicReconcile: periodicReconcile, logger: logger)
        try await ServeServices.make(worker: worker, http: try httpSettings(), registry: registry, logger: logger)
            .run(logger: logger)
    }
}
