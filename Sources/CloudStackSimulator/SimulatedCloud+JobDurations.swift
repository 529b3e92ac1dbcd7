import Foundation

/// A range of job durations in milliseconds, drawn uniformly (`SimulatorFaults.jobDurationsMs`).
public struct SimulatorDurationRange: Codable, Sendable, Equatable {
    public var minMs: Int
    public var maxMs: Int

    public init(minMs: Int, maxMs: Int) {
        self.minMs = minMs
        self.maxMs = maxMs
    }

    enum CodingKeys: String, CodingKey {
        case minMs = "min_ms"
        case maxMs = "max_ms"
    }

    /// An hour: longer than any job wait volumed allows, so every realistic spread fits.
    public static let maximumMs = 3_600_000

    /// Each key names an async command the simulator runs; 0 ≤ min ≤ max ≤ an hour.
    static func validate(_ ranges: [String: SimulatorDurationRange], field: String) throws {
        for (command, range) in ranges.sorted(by: { $0.key < $1.key }) {
            guard SimulatedCloud.javaClasses[command] != nil else {
                let known = SimulatedCloud.javaClasses.keys.sorted().joined(separator: ", ")
                throw SimulatorFaults.Invalid(description: "\(field) names \(command), which is not an async command; use one of \(known)")
            }
            guard range.minMs >= 0, range.minMs <= range.maxMs, range.maxMs <= maximumMs else {
                throw SimulatorFaults.Invalid(description: "\(field).\(command) must have 0 ≤ min_ms ≤ max_ms ≤ \(maximumMs) "
                    + "(got min_ms \(range.minMs), max_ms \(range.maxMs))")
            }
        }
    }
}

extension SimulatedCloud {
    /// How long a new job of `command` stays pending: drawn from its configured range, else
    /// the fixed `asyncDelay`.
    func drawJobDuration(_ command: String) -> Duration {
        guard let range = faults.jobDurationsMs[command] else { return configuration.asyncDelay }
        return .milliseconds(Int.random(in: range.minMs...range.maxMs))
    }
}
