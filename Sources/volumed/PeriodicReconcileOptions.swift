import ArgumentParser
import Foundation
import Operations
import Logging

/// `--reconcile-interval` / `VOLUMED_RECONCILE_INTERVAL`: how often a worker offers to run a
/// reconcile pass (one worker at a time runs it). 0 turns the periodic pass off.
struct PeriodicReconcileOptions: ParsableArguments {
    static let defaultSeconds = 300

    @Option(help: "Seconds between reconcile passes; 0 turns them off (default: $VOLUMED_RECONCILE_INTERVAL or 300).")
    var reconcileInterval: Int?

    func validate() throws {
        _ = try seconds()
    }

    /// The interval in seconds, flag first, then the environment, then the default.
    func seconds() throws -> Int {
        let value: Int
        if let reconcileInterval {
            value = reconcileInterval
        } else if let text = ProcessInfo.processInfo.environment["VOLUMED_RECONCILE_INTERVAL"], !text.isEmpty {
            guard let parsed = Int(text) else {
                throw ValidationError("VOLUMED_RECONCILE_INTERVAL must be a whole number of seconds, 0 to turn periodic reconcile off (got \(text))")
            }
            value = parsed
        } else {
            value = Self.defaultSeconds
        }
        guard (0...86_400).contains(value) else {
            throw ValidationError("the reconcile interval must be between 0 (off) and 86400 seconds (got \(value)); "
                                  + "set --reconcile-interval or VOLUMED_RECONCILE_INTERVAL")
        }
        return value
    }

    /// The interval of the worker's periodic pass; nil when turned off.
    func interval() throws -> Duration? {
        let seconds = try seconds()
        return seconds > 0 ? .seconds(seconds) : nil
    }
}
