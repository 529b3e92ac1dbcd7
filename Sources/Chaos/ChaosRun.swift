import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization
import VolumeClient

/// A chaos run: the plan driven through real `volumed worker` processes while a killer
/// SIGKILLs one every `killInterval` and PostgreSQL restarts mid-run, then the audit.
///
/// ```swift
/// let report = try await ChaosRun.run(configuration, logger: logger)
/// print(report.summary)
/// ```
public enum ChaosRun {
    /// Starts a world, drives and audits; the world's files stay when the run failed.
    public static func run(_ configuration: ChaosConfiguration, logger: Logger) async throws -> ChaosReport {
        try await ChaosWorld.with(configuration, logger: logger, keep: { !$0.passed }) { world in
            try await drive(in: world, logger: logger).audit()
        }
    }

    /// Drives the plan in `world` with the faults on and stops the workers; the returned
    /// session audits (and may audit again, after a test tampered with the world).
    public static func drive(in world: ChaosWorld, logger: Logger) async throws -> ChaosSession {
        let configuration = world.configuration
        let started = ContinuousClock.now
        // The audit and the workers' shutdown get the last tenth of the time.
        let deadline = started + configuration.maxDuration * 0.9
        let plan = ChaosPlan.make(operations: configuration.operations, seed: configuration.seed)
        logger.notice("chaos run starting", metadata: [
            "seed": "\(configuration.seed)", "operations": "\(plan.operationCount)", "directory": "\(world.root.path)",
        ])
        let fleet = WorkerFleet(world: world, logger: logger)
        try await fleet.startAll()
        let incidents = Incidents()
        let url = try DatabaseURL(world.databaseURL)
        let drive = try await PostgresClient.withRunning(url, maximumConnections: configuration.parallelVolumes + 4, logger: logger) { client in
            let queue = VolumeClient(client: client, database: url, logger: logger)
            defer { queue.close() }
            let driver = ChaosDriver(world: world, plan: plan, queue: queue, deadline: deadline, logger: logger)
            return await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await superviseAndKill(fleet, every: configuration.killInterval, database: client, incidents: incidents, logger: logger)
                }
                group.addTask {
                    await restartPostgres(world, times: configuration.postgresRestarts, driver: driver, total: plan.operationCount,
                                          incidents: incidents, logger: logger)
                }
                group.addTask { await reportStalls(driver, logger: logger) }
                let outcome = await driver.run()
                group.cancelAll()
                return outcome
            }
        }
        let uncleanExits = await fleet.stopAll()
        return ChaosSession(
            world: world, plan: plan, drive: drive, started: started, logger: logger,
            kills: await fleet.kills, workerStarts: await fleet.starts, exitsOnTheirOwn: await fleet.exitsOnTheirOwn,
            postgresRestarts: incidents.postgresRestarts.load(ordering: .relaxed),
            harnessProblems: incidents.problems.withLock { $0 } + uncleanExits.map { "worker \($0) at the final SIGTERM" })
    }

    /// Starts again any worker that ended on its own (every 250 ms) and, every `interval`,
    /// SIGKILLs one and starts its replacement: a worker holding an executing operation when
    /// there is one (so kills hit work in flight, which the rescue must then finish), else any.
    private static func superviseAndKill(_ fleet: WorkerFleet, every interval: Duration?, database: PostgresClient,
                                         incidents: Incidents, logger: Logger) async {
        var nextKill = interval.map { ContinuousClock.now + $0 }
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            if Task.isCancelled { return }
            do {
                try await fleet.reviveExited()
                if let due = nextKill, let interval, ContinuousClock.now >= due {
                    try await fleet.killOne(preferring: await busyWorkerPIDs(database, logger: logger))
                    nextKill = due + interval
                }
            } catch {
                incidents.record("could not start a worker: \(error)")
            }
        }
    }

    /// Process ids of the workers holding an executing operation, read from `claimed_by`
    /// (`host-pid-suffix`, WorkerConfiguration.defaultWorkerName). Empty when PostgreSQL is down.
    private static func busyWorkerPIDs(_ database: PostgresClient, logger: Logger) async -> Set<pid_t> {
        let rows = (try? await database.textRows(
            "SELECT DISTINCT claimed_by FROM volume_operations WHERE status = 'executing'", logger: logger)) ?? []
        return Set(rows.compactMap { row in
            row.first??.split(separator: "-").dropLast().last.flatMap { pid_t($0) }
        })
    }

    /// Every 30 s without progress, says what the unfinished chains wait for.
    private static func reportStalls(_ driver: ChaosDriver, logger: Logger) async {
        var last = -1
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(30))
            if Task.isCancelled { return }
            let progress = driver.progress
            if progress == last {
                logger.notice("no progress for 30 s", metadata: ["still_running": "\(driver.stillRunning.prefix(10))"])
            }
            last = progress
        }
    }

    /// Restarts PostgreSQL `times` times, evenly spread over the run's progress (at half of
    /// the operations for one restart).
    private static func restartPostgres(_ world: ChaosWorld, times: Int, driver: ChaosDriver, total: Int,
                                        incidents: Incidents, logger: Logger) async {
        guard times > 0 else { return }
        for number in 1...times {
            let due = total * number / (times + 1)
            while driver.progress < due {
                try? await Task.sleep(for: .milliseconds(100))
                if Task.isCancelled { return }
            }
            do {
                logger.notice("restarting PostgreSQL", metadata: ["progress": "\(driver.progress)/\(total)"])
                try await world.postgres.restart(downtime: world.configuration.postgresDowntime)
                incidents.postgresRestarts.add(1, ordering: .relaxed)
            } catch {
                incidents.record("PostgreSQL restart \(number) failed: \(error)")
            }
        }
    }
}

/// What happened to the run's environment, written by the killer and the restarter.
final class Incidents: Sendable {
    let postgresRestarts = Atomic<Int>(0)
    let problems = Mutex<[String]>([])

    func record(_ problem: String) {
        problems.withLock { $0.append(problem) }
    }
}

/// A driven chaos run, ready to audit.
public struct ChaosSession: Sendable {
    public let world: ChaosWorld
    let plan: ChaosPlan
    let drive: DriveOutcome
    let started: ContinuousClock.Instant
    let logger: Logger
    public let kills: Int
    public let workerStarts: Int
    public let exitsOnTheirOwn: Int
    public let postgresRestarts: Int
    /// The harness's own failures (a worker that would not start, a restart that failed).
    public let harnessProblems: [String]

    /// Every volume the run's creates made, for tests that tamper with one.
    public var createdVolumes: [String] { drive.chains.compactMap(\.volumeID) }

    /// Checks every invariant against the world as it is now.
    public func audit() async throws -> ChaosReport {
        let findings = try await ChaosAudit(world: world, drive: drive, logger: logger).run()
        var problems = harnessProblems
        let configuration = world.configuration
        if postgresRestarts < configuration.postgresRestarts {
            problems.append("PostgreSQL was restarted \(postgresRestarts) of \(configuration.postgresRestarts) times")
        }
        if configuration.killInterval != nil && kills == 0 {
            problems.append("no worker was killed: the run was too short for the killer")
        }
        var shapes: [String: Int] = [:]
        for chain in plan.chains { shapes[chain.shape.rawValue, default: 0] += 1 }
        var report = ChaosReport(
            seed: world.configuration.seed, operationsPlanned: plan.operationCount, chainsByShape: shapes,
            badRows: plan.badRows.count, workersPerAppliance: world.configuration.workersPerAppliance, kills: kills,
            workerStarts: workerStarts, workerExitsOnTheirOwn: exitsOnTheirOwn, postgresRestarts: postgresRestarts,
            rescues: findings.rescues, retries: findings.retries, maxAttempts: findings.maxAttempts, operations: findings.operations,
            sideEffects: findings.sideEffects, apiCalls: findings.apiCalls, jobs: findings.jobs, liveVolumes: findings.liveVolumes,
            attachedVolumes: findings.attachedVolumes, activeExports: findings.activeExports,
            duration: ContinuousClock.now - started, violations: problems + findings.violations)
        if !report.passed { report.workerLogTails = world.workerLogTails(lines: 12) }
        return report
    }
}
