import CloudStack
import AsyncHTTPClient
import Chaos
import CloudStackSimulator
import Foundation
import Operations
import Logging
import Testing

/// The chaos suite, short: 60 operations through three real `volumed worker` processes on two
/// appliances while one is SIGKILLed every 2 s, PostgreSQL restarts once, 10 % of CloudStack
/// calls fail, 5 % of its jobs hang past the workers' job timeout, 2 % are cancelled by CloudStack's
/// job GC (failed, no result, nothing done), ended jobs are deleted after 4 s (job.expire.minutes),
/// 3 % of the state-changing calls run but lose their reply and 3 % of detaches time out in KVM
/// with the disk held for another 0.5 s. (`scripts/chaos` runs the full 500.)
@Suite struct ChaosSuiteTests {
    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    static let logger: Logger = {
        var logger = Logger(label: "chaos-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["VOLUMED_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    @Test func underKillsARestartAndCloudStackFaultsNoOperationIsLostOrRepeated() async throws {
        var configuration = ChaosConfiguration(volumedExecutable: Self.volumed)
        configuration.operations = 60
        configuration.parallelVolumes = 12
        // Runs take 15–45 s here; the limit only matters when something stalls, and a slower
        // CI machine must not turn a slow run into a failure.
        configuration.maxDuration = .seconds(240)
        // The body answers whether anything failed; then the run's folder (worker logs, by-id
        // and export directories) is kept and named in the log.
        _ = try await ChaosWorld.with(configuration, logger: Self.logger, keep: { failed in failed }) { world -> Bool in
            let session = try await ChaosRun.drive(in: world, logger: Self.logger)
            let report = try await session.audit()
            #expect(report.violations == [], "\(report.summary)\n  files kept in \(world.root.path)")
            #expect(report.kills > 0 && report.postgresRestarts == 1, "\(report.summary)")
            #expect(report.rescues > 0, "no operation was rescued, so kills never hit work in flight: \(report.summary)")

            // The audit must catch what a retry that forgot its job id would do: a second
            // attachVolume for a volume whose operations needed one.
            let volume = try #require(session.createdVolumes.first)
            await world.simulator.setFaults(SimulatorFaults())
            let cloudStack = CloudStackClient(
                configuration: CloudStackConfiguration(apiURL: world.simulator.apiURL, apiKey: ChaosWorld.apiKey, secretKey: ChaosWorld.secretKey),
                httpClient: HTTPClient.shared, logger: Self.logger)
            let job = try await cloudStack.attachVolume(id: volume, virtualMachineId: world.appliances[0].vmID)
            _ = try? await cloudStack.waitForJob(jobId: job, timeout: .seconds(15))
            let tampered = try await session.audit()
            let caught = tampered.violations.contains { $0.contains(volume) && $0.contains("attachVolume") && $0.contains("repeated") }
            #expect(caught, "\(tampered.summary)")
            return !report.passed || report.kills == 0 || report.rescues == 0 || !caught
        }
    }
}
