import Foundation

/// How one worker process runs its queue.
public struct WorkerConfiguration: Sendable {
    /// Unique per process, written to `claimed_by`: host, pid and a random suffix, so a
    /// restarted process never mistakes its predecessor's rows for its own.
    public var workerName: String
    /// The appliance VM this worker runs on (`VOLUMED_APPLIANCE_VM_ID`); operations that need
    /// that VM's local block devices are claimed only by its workers. Nil: generic worker.
    public var applianceVMId: String?
    /// Operations run at once (`VOLUMED_CONCURRENCY`).
    public var concurrency: Int
    /// Rows claimed per statement, at most the free slots.
    public var claimBatchSize: Int
    /// How long a claim is valid without a heartbeat.
    public var leaseDuration: Duration
    /// How often leases are extended (well inside `leaseDuration`).
    public var heartbeatInterval: Duration
    /// The fallback poll: missed notifications never strand work for longer than this.
    public var pollInterval: Duration
    /// How often this worker tries to be the rescuer of expired leases.
    public var rescueInterval: Duration
    /// On SIGTERM/SIGINT, how long in-flight operations may run before they are released.
    public var shutdownGracePeriod: Duration
    public var backoff: Backoff

    public init(
        workerName: String = WorkerConfiguration.defaultWorkerName(),
        applianceVMId: String? = nil,
        concurrency: Int = 16,
        claimBatchSize: Int = 16,
        leaseDuration: Duration = .seconds(30),
        heartbeatInterval: Duration = .seconds(10),
        pollInterval: Duration = .seconds(1),
        rescueInterval: Duration = .seconds(5),
        shutdownGracePeriod: Duration = .seconds(25),
        backoff: Backoff = Backoff()
    ) {
        self.workerName = workerName
        self.applianceVMId = applianceVMId
        self.concurrency = concurrency
        self.claimBatchSize = claimBatchSize
        self.leaseDuration = leaseDuration
        self.heartbeatInterval = heartbeatInterval
        self.pollInterval = pollInterval
        self.rescueInterval = rescueInterval
        self.shutdownGracePeriod = shutdownGracePeriod
        self.backoff = backoff
    }

    /// The fewest free slots worth a claim while the queue has more than a batch: half a
    /// batch (see `QueueWorker.claimAndRun`).
    var fullClaimBatch: Int { max(1, min(claimBatchSize, concurrency) / 2) }

    public static func defaultWorkerName() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(suffix)"
    }

    /// Checks the values an operator can set, naming the setting and the fix.
    public func validate() throws {
        func fail(_ message: String) -> QueueFailure { QueueFailure(code: "invalid_configuration", message: message, isTransient: false) }
        guard (1...10_000).contains(concurrency) else {
            throw fail("VOLUMED_CONCURRENCY must be between 1 and 10000 (got \(concurrency))")
        }
        guard claimBatchSize >= 1 else { throw fail("the claim batch size must be at least 1 (got \(claimBatchSize))") }
        guard heartbeatInterval < leaseDuration else {
            throw fail("the heartbeat interval (\(heartbeatInterval)) must be shorter than the lease (\(leaseDuration))")
        }
        guard !workerName.isEmpty, workerName.count <= 200 else { throw fail("the worker name must be 1-200 characters") }
    }
}
