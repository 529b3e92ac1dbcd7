import ArgumentParser
import Foundation
import Logging
import Schema

@main
struct Volumed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volumed",
        abstract: "CloudStack volume operations from a PostgreSQL job queue.",
        discussion: "Configuration comes from the environment (DATABASE_URL, CLOUDSTACK_*, VOLUMED_*); flags override it.",
        subcommands: [
            MigrateCommand.self, WorkerCommand.self, ServeCommand.self, EnqueueCommand.self, WaitCommand.self,
            OpsCommand.self, DeviceCommand.self, ReconcileCommand.self, PruneCommand.self, DemoCommand.self,
        ])

    static func bootstrapLogging() {
        let level = ProcessInfo.processInfo.environment["VOLUMED_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// `--database-url`, falling back to `DATABASE_URL`.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "libpq URL (default: $DATABASE_URL).")
    var databaseURL: String?

    func url() throws -> DatabaseURL {
        if let databaseURL, !databaseURL.isEmpty { return try DatabaseURL(databaseURL) }
        guard let text = ProcessInfo.processInfo.environment["DATABASE_URL"], !text.isEmpty else {
            throw ValidationError("DATABASE_URL is not set: pass --database-url postgres://user:password@host:5432/database or set DATABASE_URL")
        }
        return try DatabaseURL(text)
    }
}
