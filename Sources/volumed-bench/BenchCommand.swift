import ArgumentParser
import DevServices
import Foundation
import Logging
import PostgresNIO
import Schema
import ServiceLifecycle
import VolumeClient
import Worker

@main
struct VolumedBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volumed-bench",
        abstract: "Benchmarks of the volumed queue engine (run with -c release).",
        subcommands: [DrainBenchmark.self, LatencyBenchmark.self, AttachBenchmark.self, ScaleBenchmark.self, MemoryBenchmark.self, ReconcileBenchmark.self, ClockBenchmark.self, ChaosCommand.self, SyntheticWorker.self])
}

struct DatabaseOption: ParsableArguments {
    @Option(help: "PostgreSQL URL; a throwaway cluster is started when neither this nor DATABASE_URL is set.")
    var databaseURL: String?

    /// Runs `body` with a migrated database and its URL text.
    func withDatabase<T: Sendable>(logger: Logger, _ body: @Sendable (String, PostgresClient) async throws -> T) async throws -> T {
        var server: EphemeralPostgres?
        let text: String
        if let url = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            text = url
        } else {
            // Durable settings, as a real deployment would have (fsync on).
            let started = try await EphemeralPostgres.start(settings: ["max_connections": "300", "shared_buffers": "256MB"])
            server = started
            text = started.url()
        }
        defer { server?.stop() }
        let url = try DatabaseURL(text)
        return try await PostgresClient.withRunning(url, logger: logger) { client in
            try await Migrator(logger: logger).migrate(client)
            return try await body(text, client)
        }
    }
}

func benchLogger() -> Logger {
    var logger = Logger(label: "volumed-bench")
    logger.logLevel = ProcessInfo.processInfo.environment["VOLUMED_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    return logger
}

/// The path of this executable, to start worker processes of it.
func ownExecutable() -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path.hasPrefix("/")
        ? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
}
