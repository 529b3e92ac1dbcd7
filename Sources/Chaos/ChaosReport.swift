import Primitives
import CloudStackSimulator
import Foundation

/// What a chaos run did and whether every invariant held. `summary` is what
/// `volumed-bench chaos` prints and BENCHMARKS.md quotes.
public struct ChaosReport: Sendable {
    public let seed: UInt64
    public let operationsPlanned: Int
    public let chainsByShape: [String: Int]
    public let badRows: Int
    public let workersPerAppliance: [Int]
    public let kills: Int
    public let workerStarts: Int
    public let workerExitsOnTheirOwn: Int
    public let postgresRestarts: Int
    /// Rows the rescuer returned to pending (events with detail `lease expired`).
    public let rescues: Int
    /// Transient failures retried, by error code.
    public let retries: [String: Int]
    public let maxAttempts: Int
    /// Type → status → count.
    public let operations: [String: [String: Int]]
    public let sideEffects: SimulatorState.SideEffects
    public let apiCalls: Int
    public let jobs: Int
    public let liveVolumes: Int
    public let attachedVolumes: Int
    public let activeExports: Int
    public let duration: Duration
    /// Each broken invariant, as a sentence. Empty: the run passed.
    public let violations: [String]
    /// When the run failed: the last lines of each worker's log, so a failure in CI (where
    /// the run's folder is gone) can be read from the report alone.
    public var workerLogTails: [String: [String]] = [:]

    public var passed: Bool { violations.isEmpty }

    public var summary: String {
        var lines: [String] = []
        let seconds = String(format: "%.1f", duration.seconds)
        lines.append("chaos run (seed \(seed)): \(passed ? "PASSED" : "FAILED") in \(seconds) s")
        let shapes = ChainShape.allCases.map { "\(chainsByShape[$0.rawValue] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        lines.append("  plan: \(operationsPlanned) operations; \(chainsByShape.values.reduce(0, +)) volume chains (\(shapes)); \(badRows) bad rows")
        lines.append("  workers: \(workersPerAppliance.reduce(0, +)) (\(workersPerAppliance[0]) on appliance A, \(workersPerAppliance[1]) on B); "
                     + "\(kills) SIGKILLs, \(workerStarts) starts, \(workerExitsOnTheirOwn) exits on their own; PostgreSQL restarts: \(postgresRestarts)")
        let retryTotal = retries.values.reduce(0, +)
        let retryCodes = retries.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("  rescues (lease expired): \(rescues); retries: \(retryTotal)\(retryCodes.isEmpty ? "" : " (\(retryCodes))"); "
                     + "most attempts of one operation: \(maxAttempts)")
        lines.append("  operations by type and status:")
        for type in operations.keys.sorted() {
            let statuses = operations[type]!.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("    \(type.padding(toLength: 9, withPad: " ", startingAt: 0)) \(statuses)")
        }
        lines.append("  CloudStack side effects: createVolume \(sideEffects.createVolume), attachVolume \(sideEffects.attachVolume), "
                     + "detachVolume \(sideEffects.detachVolume) (\(sideEffects.detachTimedOut) timed out in KVM), "
                     + "deleteVolume \(sideEffects.deleteVolume) "
                     + "(\(apiCalls) API calls, \(jobs) async jobs)")
        lines.append("  end state: \(liveVolumes) volumes, \(attachedVolumes) attached, \(activeExports) exported")
        if violations.isEmpty {
            lines.append("  violations: none")
        } else {
            lines.append("  violations (\(violations.count)):")
            lines += violations.prefix(50).map { "    - \($0)" }
            if violations.count > 50 { lines.append("    … and \(violations.count - 50) more") }
            for (worker, tail) in workerLogTails.sorted(by: { $0.key < $1.key }) {
                lines.append("  last lines of \(worker).log:")
                lines += tail.map { "    \($0)" }
            }
        }
        return lines.joined(separator: "\n")
    }
}
