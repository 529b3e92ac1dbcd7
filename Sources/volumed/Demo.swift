import DevServices
import Foundation
import Logging
import PostgresNIO
import Schema
import VolumeClient
import Worker

/// `volumed demo`: everything on this machine, nothing left behind.
struct Demo {
    func run() async throws {
        print("volumed demo: starting a throwaway PostgreSQL…")
        let started = ContinuousClock.now
        let postgres = try await EphemeralPostgres.start()
        defer { postgres.stop() }
        let logger = quietLogger("volumed-demo")
        let url = try DatabaseURL(postgres.url())
        try await PostgresClient.withRunning(url, logger: logger) { client in
            let report = try await Migrator(logger: logger).migrate(client)
            print("  migrated: \(report.applied.map(\.fileName).joined(separator: ", ")) (\(elapsed(since: started)))")
        }
    }
}

func elapsed(since start: ContinuousClock.Instant) -> String {
    let duration = ContinuousClock.now - start
    let (seconds, atto) = duration.components
    return String(format: "%.0f ms", Double(seconds) * 1000 + Double(atto) / 1e15)
}
