import Foundation

/// What one chaos run does: how much work, which faults, how hard the killer hits, and how
/// long it may take. The defaults are the full run (`scripts/chaos`); the test suite runs a
/// smaller one.
public struct ChaosConfiguration: Sendable {
    /// The `volumed` executable the worker processes run.
    public var volumedExecutable: String
    /// Operations to enqueue, bad rows included (chains are added until the total reaches it).
    public var operations: Int = 500
    /// Volume chains running at once.
    public var parallelVolumes: Int = 24
    /// Seeds the plan (chain shapes, appliances, bad rows); the faults and kills stay random.
    public var seed: UInt64 = UInt64.random(in: 1...UInt64(UInt32.max))
    /// Workers per appliance: A gets the first, B the second.
    public var workersPerAppliance: [Int] = [2, 1]
    /// `VOLUMED_CONCURRENCY` of each worker.
    public var workerConcurrency: Int = 16
    /// `--lease-seconds`: short, so killed workers' operations are rescued quickly.
    public var leaseSeconds: Int = 5
    /// `VOLUMED_CLOUDSTACK_JOB_TIMEOUT`: shorter than `stuckJobDelay`, so a stuck job times
    /// the worker out and the retry must wait on the same job.
    public var jobTimeoutSeconds: Int = 3
    /// A random worker is SIGKILLed (and restarted) this often; nil: no kills.
    public var killInterval: Duration? = .seconds(2)
    /// PostgreSQL restarts (an immediate stop, as a crash, then a start), spread over the run.
    public var postgresRestarts: Int = 1
    /// How long PostgreSQL stays down at each restart.
    public var postgresDowntime: Duration = .seconds(1)
    /// Fraction of CloudStack API calls answered with error 530.
    public var failRate: Double = 0.10
    /// Fraction of CloudStack async jobs that hang for `stuckJobDelay` before they finish.
    public var stuckRate: Double = 0.05
    public var stuckJobDelay: Duration = .seconds(8)
    /// Fraction of state-changing CloudStack calls that run but whose reply is lost (a bare
    /// 502 from a proxy): the worker cannot tell whether its request took effect.
    public var replyLostRate: Double = 0.03
    /// Late udev links: each by-id link appears (after an attach) or goes (after a detach)
    /// up to this long after its job succeeded, drawn afresh each time; the handlers must
    /// wait for it rather than record a missing link or call a detach done too early.
    public var lateLinkJitter: Duration = .milliseconds(400)
    /// Fraction of CloudStack async jobs its job GC cancels (failed, jobresultcode 0, no
    /// jobresult, nothing done): the worker must look before it sends the request again.
    public var jobGCCancelRate: Double = 0.02
    /// CloudStack's `job.expire.minutes`, shortened: a job that ended this long ago is deleted,
    /// so a worker that resumes after a kill or a backoff may find its checkpointed job gone.
    public var jobExpiry: Duration? = .seconds(4)
    /// Fraction of detaches from an appliance that time out in KVM (wait.detach.device) while
    /// the guest holds the disk; it lets go `detachReleaseDelay` later.
    public var detachTimeoutRate: Double = 0.03
    public var detachReleaseDelay: Duration = .milliseconds(500)
    /// How long an ordinary CloudStack async job takes.
    public var asyncDelay: Duration = .milliseconds(300)
    /// The whole run (start, drive, audit) must end within this, or it fails.
    public var maxDuration: Duration = .seconds(600)
    /// Keep the run's directory (worker logs, by-id and export folders) even when it passed.
    public var keepFiles: Bool = false

    public init(volumedExecutable: String) {
        self.volumedExecutable = volumedExecutable
    }

    /// Refuses settings that cannot make a meaningful run, naming the setting.
    public func validate() throws {
        func refuse(_ message: String) -> ChaosError { ChaosError(message) }
        guard FileManager.default.isExecutableFile(atPath: volumedExecutable) else {
            throw refuse("the volumed executable \(volumedExecutable) does not exist or is not executable; build it first (swift build)")
        }
        guard operations >= 10 else { throw refuse("operations must be at least 10 (got \(operations))") }
        guard parallelVolumes >= 1 else { throw refuse("parallel volumes must be at least 1 (got \(parallelVolumes))") }
        guard workersPerAppliance.count == 2, workersPerAppliance.allSatisfy({ $0 >= 1 }) else {
            throw refuse("workers per appliance must name two appliances with at least one worker each (got \(workersPerAppliance))")
        }
        guard (5...3600).contains(leaseSeconds) else { throw refuse("the lease must be 5-3600 s (got \(leaseSeconds))") }
        guard jobTimeoutSeconds >= 1 else { throw refuse("the job timeout must be at least 1 s (got \(jobTimeoutSeconds))") }
        guard (0...1).contains(failRate), (0...1).contains(stuckRate), (0...1).contains(replyLostRate),
              (0...1).contains(detachTimeoutRate)
        else {
            throw refuse("the fail, stuck, reply-lost and detach-timeout rates must be between 0 and 1 (got \(failRate), "
                + "\(stuckRate), \(replyLostRate), \(detachTimeoutRate))")
        }
        guard detachReleaseDelay >= .zero else {
            throw refuse("the detach release delay must not be negative (got \(detachReleaseDelay))")
        }
        guard lateLinkJitter >= .zero, lateLinkJitter <= .seconds(60) else {
            throw refuse("the late-link jitter must be 0-60 s (got \(lateLinkJitter))")
        }
        guard (0...1).contains(jobGCCancelRate) else {
            throw refuse("the job GC cancel rate must be between 0 and 1 (got \(jobGCCancelRate))")
        }
        if let jobExpiry, jobExpiry < .seconds(1) {
            throw refuse("the job expiry must be at least 1 s (got \(jobExpiry))")
        }
        guard postgresRestarts >= 0 else { throw refuse("PostgreSQL restarts must not be negative (got \(postgresRestarts))") }
        if let killInterval, killInterval < .milliseconds(100) {
            throw refuse("the kill interval must be at least 100 ms (got \(killInterval))")
        }
        guard maxDuration >= .seconds(10) else { throw refuse("the run must be allowed at least 10 s (got \(maxDuration))") }
    }
}

public struct ChaosError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
