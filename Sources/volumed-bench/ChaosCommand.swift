import ArgumentParser
import Chaos
import Foundation
import Logging
import UnixSignals

/// `volumed-bench chaos`: the chaos suite (Sources/Chaos) against real `volumed worker`
/// processes; exits non-zero when any run breaks an invariant. `scripts/chaos` builds the
/// release binaries and runs this.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Workers SIGKILLed, PostgreSQL restarted, CloudStack failing: prove nothing is lost or repeated.")

    @Option(help: "The volumed executable the workers run (default: volumed beside this executable).") var volumed: String?
    @Option(help: "Operations per run, bad rows included.") var operations = 500
    @Option(help: "Runs, one after another; each starts from scratch.") var runs = 1
    @Option(help: "Each run must finish within this many seconds.") var maxSeconds = 600
    @Option(help: "Volume chains at once.") var parallel = 24
    @Option(help: "Seconds between worker SIGKILLs; 0 turns the killer off.") var killSeconds = 2.0
    @Option(help: "PostgreSQL restarts per run.") var postgresRestarts = 1
    @Option(help: "Fraction of CloudStack API calls that fail with 530.") var failRate = 0.10
    @Option(help: "Fraction of CloudStack async jobs that hang for --stuck-seconds.") var stuckRate = 0.05
    @Option(help: "How long a stuck job hangs before it completes.") var stuckSeconds = 8
    @Option(help: "Fraction of state-changing CloudStack calls that run but whose reply is lost (a proxy's 502).") var replyLostRate = 0.03
    @Option(help: "Fraction of detaches that time out in KVM (wait.detach.device) with the disk held; it is released 0.5 s later.")
    var detachTimeoutRate = 0.03
    @Option(help: "The workers' VOLUMED_CLOUDSTACK_JOB_TIMEOUT.") var jobTimeoutSeconds = 3
    @Option(help: "Fraction of CloudStack async jobs its job GC cancels (failed without a result, nothing done).")
    var jobGCCancelRate = 0.02
    @Option(help: "Seconds after which CloudStack deletes an ended job (job.expire.minutes); 0 keeps them.")
    var jobExpireSeconds = 4
    @Option(help: "Seed of the first run's plan (the next runs add 1 each); random when not given.") var seed: UInt64?
    @Flag(help: "Keep each run's directory (worker logs, by-id and export folders) even when it passed.") var keepFiles = false

    func run() async throws {
        // Ctrl-C or SIGTERM: no worker process may outlive the run, and exiting stops PostgreSQL.
        let interruption = Task {
            for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                ChaosInterruption.killWorkers()
                FileHandle.standardError.write(Data("chaos run interrupted (\(signal)); workers killed\n".utf8))
                Foundation.exit(130)
            }
        }
        defer { interruption.cancel() }
        try await runAll()
    }

    private func runAll() async throws {
        var logger = Logger(label: "volumed-chaos")
        logger.logLevel = ProcessInfo.processInfo.environment["VOLUMED_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        let executable = volumed ?? URL(fileURLWithPath: ownExecutable()).deletingLastPathComponent().appendingPathComponent("volumed").path
        let firstSeed = seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
        var failed = 0
        for number in 1...max(1, runs) {
            var configuration = ChaosConfiguration(volumedExecutable: executable)
            configuration.operations = operations
            configuration.parallelVolumes = parallel
            configuration.killInterval = killSeconds > 0 ? .milliseconds(Int(killSeconds * 1000)) : nil
            configuration.postgresRestarts = postgresRestarts
            configuration.failRate = failRate
            configuration.stuckRate = stuckRate
            configuration.replyLostRate = replyLostRate
            configuration.detachTimeoutRate = detachTimeoutRate
            configuration.stuckJobDelay = .seconds(stuckSeconds)
            configuration.jobTimeoutSeconds = jobTimeoutSeconds
            configuration.jobGCCancelRate = jobGCCancelRate
            configuration.jobExpiry = jobExpireSeconds > 0 ? .seconds(jobExpireSeconds) : nil
            configuration.maxDuration = .seconds(maxSeconds)
            configuration.seed = firstSeed &+ UInt64(number - 1)
            configuration.keepFiles = keepFiles
            let report = try await ChaosRun.run(configuration, logger: logger)
            print("run \(number) of \(runs): " + report.summary)
            if !report.passed { failed += 1 }
        }
        if failed > 0 {
            print("\(failed) of \(runs) chaos runs FAILED")
            throw ExitCode(1)
        }
    }
}
