import ArgumentParser
import DevServices
import Foundation
import Logging
import UnixSignals

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a throwaway PostgreSQL, the CloudStack simulator, nbdkit and a worker, and run a replication volume flow.",
        discussion: "Ctrl-C (SIGINT) or SIGTERM stops the flow at its next step and still removes everything it started; a second Ctrl-C exits at once.")

    func run() async throws {
        do {
            try await DemoPrerequisites.ensure()
        } catch let missing as DemoPrerequisites.Missing {
            print(missing.description)
            throw ExitCode(1)
        }
        // A signal's default action would end the process at once, leaving PostgreSQL and
        // nbdkit running and the temporary folders behind. Trapped, it asks the flow to stop
        // at its next step, whose clean-up then runs as after any failure.
        let interruption = DemoInterruption()
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await Demo(interruption: interruption).run()
                } catch is DemoInterruption.Interrupted {
                    print("stopped; PostgreSQL, simulator, nbdkit and temp files removed")
                    throw ExitCode(130)
                }
            }
            group.addTask {
                var received = 0
                for await signal in signals {
                    received += 1
                    if received > 1 { Foundation.exit(130) } // asked twice: stop now (atexit still stops PostgreSQL)
                    print("\n\(signal) received: stopping after the current step (Ctrl-C again to quit at once) …")
                    interruption.request()
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
