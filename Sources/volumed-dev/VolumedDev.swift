import ArgumentParser
import Foundation
import Logging

/// The development tool: what a developer runs from a checkout and a production appliance
/// never needs (the demo, with its throwaway PostgreSQL, CloudStack simulator and nbdkit).
/// Kept apart so the shipped `volumed` links no simulator.
@main
struct VolumedDev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volumed-dev",
        abstract: "volumed's development tool: the demo of a replication volume flow on throwaway services.",
        subcommands: [DemoCommand.self])
}
