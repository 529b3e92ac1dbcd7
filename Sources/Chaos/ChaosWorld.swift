import Primitives
import CloudStackSimulator
import DevServices
import Foundation
import Logging
import PostgresNIO
import Schema

/// One appliance VM of the chaos world, as its workers see it: its own by-id directory
/// (where the simulator hot-plugs its disks), its export directory and its own nbdkit.
public struct ChaosAppliance: Sendable {
    public let label: String
    public let vmID: String
    public let byIDDirectory: URL
    public let diskDirectory: URL
    public let exportDirectory: URL
    public let nbdkit: NbdkitServer
}

/// Everything a chaos run runs against: a throwaway PostgreSQL (restartable), one
/// in-process CloudStack simulator with two appliance VMs, and an nbdkit per appliance.
public struct ChaosWorld: Sendable {
    public static let apiKey = "chaos-api-key"
    public static let secretKey = "chaos-secret-key"

    public let configuration: ChaosConfiguration
    public let postgres: EphemeralPostgres
    public let databaseURL: String
    public let simulator: CloudStackSimulator
    public let appliances: [ChaosAppliance]
    /// Worker logs and the appliances' folders.
    public let root: URL
    let logger: Logger

    /// The test settings, but with `synchronous_commit` on: the restarts are crashes (an
    /// immediate stop), and without it a commit the driver was already told about could be
    /// lost with the WAL buffers. `fsync` stays off: it guards against an OS crash, which the
    /// run does not simulate.
    static let postgresSettings = EphemeralPostgres.testSettings.merging(["synchronous_commit": "on"]) { _, new in new }

    /// Starts the world, runs `body`, and tears everything down, pass or fail. The folder
    /// (worker logs, by-id and export directories) stays when `body` threw, when `keep` says
    /// so of the result, or when `keepFiles` is set.
    public static func with<Result: Sendable>(
        _ configuration: ChaosConfiguration, logger: Logger, keep: @Sendable (Result) -> Bool = { _ in false },
        _ body: @Sendable (ChaosWorld) async throws -> Result
    ) async throws -> Result {
        try configuration.validate()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-chaos-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let postgres = try await EphemeralPostgres.start(settings: postgresSettings)
        var started: [NbdkitServer] = []
        var simulator: CloudStackSimulator?
        do {
            try await postgres.createDatabase("chaos")
            let databaseURL = postgres.url(database: "chaos")
            try await PostgresClient.withRunning(try DatabaseURL(databaseURL), maximumConnections: 2, logger: logger) { client in
                _ = try await Migrator(logger: logger).migrate(client)
            }
            var appliances: [ChaosAppliance] = []
            for label in ["A", "B"] {
                let folder = root.appendingPathComponent("appliance-\(label.lowercased())")
                let exports = folder.appendingPathComponent("exports")
                try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
                let nbdkit = try await NbdkitServer.start(exportDirectory: exports.path)
                started.append(nbdkit)
                appliances.append(ChaosAppliance(
                    label: label, vmID: UUID().uuidString.lowercased(), byIDDirectory: folder.appendingPathComponent("by-id"),
                    diskDirectory: folder.appendingPathComponent("disks"), exportDirectory: exports, nbdkit: nbdkit))
            }
            var faults = SimulatorFaults(failRate: configuration.failRate, stuckRate: configuration.stuckRate,
                                         stuckDelayMs: configuration.stuckJobDelay.wholeMilliseconds,
                                         replyLostRate: configuration.replyLostRate)
            faults.linkDelayJitterMs = configuration.lateLinkJitter.wholeMilliseconds
            faults.jobGCCancelRate = configuration.jobGCCancelRate
            faults.jobExpireSeconds = configuration.jobExpiry.map { max(1, Int($0.seconds.rounded(.up))) }
            faults.detachTimeoutRate = configuration.detachTimeoutRate
            faults.detachReleaseMs = configuration.detachReleaseDelay.wholeMilliseconds
            var simulatorConfiguration = SimulatorConfiguration(
                apiKey: apiKey, secretKey: secretKey, applianceVMID: appliances[0].vmID,
                byIDDirectory: appliances[0].byIDDirectory, diskDirectory: appliances[0].diskDirectory,
                asyncDelay: configuration.asyncDelay, maxDataVolumesPerVM: 1000,
                faults: faults)
            // Appliance B was deployed with a virtio-scsi root disk: its disks arrive on SCSI.
            simulatorConfiguration.additionalAppliances = appliances.dropFirst().map {
                SimulatorAppliance(vmID: $0.vmID, name: "migration-appliance-\($0.label.lowercased())",
                                   byIDDirectory: $0.byIDDirectory, diskDirectory: $0.diskDirectory, diskBus: .scsi)
            }
            var simulatorLogger = logger
            simulatorLogger.logLevel = .warning
            simulator = try await CloudStackSimulator.start(simulatorConfiguration, logger: simulatorLogger)
            let world = ChaosWorld(configuration: configuration, postgres: postgres, databaseURL: databaseURL,
                                   simulator: simulator!, appliances: appliances, root: root, logger: logger)
            let result = try await body(world)
            let keepFiles = configuration.keepFiles || keep(result)
            await world.tearDown(started, removeFiles: !keepFiles)
            if keepFiles { logger.notice("chaos run files kept", metadata: ["directory": "\(root.path)"]) }
            return result
        } catch {
            if let simulator { await simulator.stop() }
            for nbdkit in started { await nbdkit.stop() }
            postgres.stop()
            logger.error("chaos run files kept for inspection", metadata: ["directory": "\(root.path)"])
            throw error
        }
    }

    private func tearDown(_ nbdkits: [NbdkitServer], removeFiles: Bool) async {
        await simulator.stop()
        for nbdkit in nbdkits { await nbdkit.stop() }
        postgres.stop()
        if removeFiles { try? FileManager.default.removeItem(at: root) }
    }

    var logDirectory: URL { root.appendingPathComponent("logs") }

    /// The last `lines` lines of each worker's log, by worker name.
    func workerLogTails(lines: Int) -> [String: [String]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: logDirectory.path)) ?? []
        var tails: [String: [String]] = [:]
        for name in names where name.hasSuffix(".log") {
            guard let data = FileManager.default.contents(atPath: logDirectory.appendingPathComponent(name).path) else { continue }
            let all = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            tails[String(name.dropLast(4))] = all.suffix(lines).map(String.init)
        }
        return tails
    }

    /// The appliance whose VM id this is.
    func appliance(vmID: String?) -> ChaosAppliance? {
        appliances.first { $0.vmID == vmID?.lowercased() }
    }
}
