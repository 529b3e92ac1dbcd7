import Primitives
import Foundation
import Logging
import PostgresNIO
import Schema
import ServiceLifecycle
import Synchronization

/// One worker process's queue runtime: claims operations, runs their handlers, keeps their
/// leases, rescues expired ones, and writes their results.
///
/// Pieces, each in its own file: the claim statement (`QueueSQL.claim`), the wake-up
/// (`ChannelListener` on `volume_operation_pending` + fallback poll + `Doorbell`), the
/// heartbeat (`LeaseHeartbeat`), the rescuer (`Rescuer`), the completion writer
/// (`CompletionBatcher` / `OperationSettlement`).
public final class QueueWorker: Service, Sendable {
    let client: PostgresClient
    let database: DatabaseURL
    let handlers: [String: any OperationHandler]
    let configuration: WorkerConfiguration
    let logger: Logger
    let metrics = WorkerMetrics()
    let registry = InFlightRegistry()
    let doorbell = Doorbell()
    let completer: CompletionBatcher
    let slots: ClaimSlots
    private let phase = Mutex(Phase.running)
    /// The earliest `run_after` this worker set on a retry, to wake up for it.
    private let nextRetryAt = Mutex<ContinuousClock.Instant?>(nil)
    private let released = Mutex<[(id: UUID, token: String)]>([])
    private let started = Mutex(false)

    enum Phase: Sendable { case running, draining, stopping }

    public init(
        client: PostgresClient,
        database: DatabaseURL,
        handlers: [OperationType: any OperationHandler],
        configuration: WorkerConfiguration,
        logger: Logger
    ) {
        self.client = client
        self.database = database
        self.handlers = Dictionary(uniqueKeysWithValues: handlers.map { ($0.key.rawValue, $0.value) })
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerName)"
        self.logger = logger
        let slots = ClaimSlots(concurrency: configuration.concurrency, registry: registry)
        self.slots = slots
        let (metrics, doorbell) = (self.metrics, self.doorbell)
        let fullBatch = configuration.fullClaimBatch
        self.completer = CompletionBatcher(client: client, logger: logger, claimAlong: .init(
            worker: configuration.workerName, applianceVMId: configuration.applianceVMId,
            leaseMilliseconds: configuration.leaseDuration.wholeMilliseconds, slots: slots,
            wanted: { freeing in
                // As the claim loop would with a backlog: a full batch, or at least half of one.
                guard slots.backlog else { return 0 }
                let free = min(slots.free + freeing, configuration.claimBatchSize)
                return free >= fullBatch ? free : 0
            },
            claimed: { count, seconds in
                metrics.claimed(count: count, seconds: seconds)
                doorbell.ring() // the claim loop starts them
            }))
    }

    public var name: String { configuration.workerName }

    /// The appliance VM this worker runs on, if any.
    public var applianceVMId: String? { configuration.applianceVMId }

    public func run() async throws {
        try configuration.validate()
        started.withLock { $0 = true }
        if let vmId = configuration.applianceVMId {
            _ = try await client.rows(QueueSQL.registerAppliance(vmId: vmId), logger: logger)
        }
        logger.info("worker started", metadata: [
            "concurrency": "\(configuration.concurrency)",
            "appliance_vm_id": "\(configuration.applianceVMId ?? "none")",
        ])
        let listener = ChannelListener(database: database, channel: "volume_operation_pending", logger: logger)
        let heartbeat = LeaseHeartbeat(client: client, registry: registry, configuration: configuration,
                                       logger: logger, metrics: metrics)
        let rescuer = Rescuer(client: client, interval: configuration.rescueInterval, logger: logger)
        let doorbell = self.doorbell

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { background in
                background.addTask { await listener.run(onListening: { doorbell.ring() }, onNotification: { _ in doorbell.ring() }) }
                background.addTask { await heartbeat.run() }
                background.addTask { await self.completer.run() }
                background.addTask { await rescuer.run(afterRescue: { doorbell.ring() }) }
                await self.claimAndRun()
                background.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        // Rows the group commit claimed as the worker stopped, never started: handed back.
        for operation in slots.takeHandedOff() { noteReleased(operation) }
        await releaseInterrupted()
        logger.info("worker stopped")
    }

    /// Stop claiming; in-flight operations get `shutdownGracePeriod` to finish.
    public func beginShutdown() {
        phase.withLock { if $0 == .running { $0 = .draining } }
        slots.close()
        doorbell.ring()
    }

    /// What this worker is doing now, for health checks.
    public var status: WorkerStatus {
        let phase: String
        if !started.withLock({ $0 }) {
            phase = "starting"
        } else {
            switch self.phase.withLock({ $0 }) {
            case .running: phase = "running"
            case .draining, .stopping: phase = "stopping"
            }
        }
        return WorkerStatus(name: configuration.workerName, phase: phase, inFlight: registry.count,
                            concurrency: configuration.concurrency)
    }

    var isRunning: Bool { phase.withLock { $0 == .running } }
    var isStopping: Bool { phase.withLock { $0 == .stopping } }

    // MARK: Claim loop

    private func claimAndRun() async {
        await withDiscardingTaskGroup { handlersGroup in
            // While the queue has more work than we take per claim, wait for half a batch of
            // free slots: claiming one row per freed slot would cost a statement (and a commit)
            // per operation. Half, not all, so one long operation cannot hold the rest back.
            // Once a claim comes back short, any free slot is worth a claim. Completions claim
            // along in their own commit (`CompletionBatcher`); this loop starts those too.
            let fullBatch = configuration.fullClaimBatch
            var lastClaimWasFull = false
            while isRunning {
                startHandedOff(in: &handlersGroup)
                let free = slots.free
                guard free > 0, free >= fullBatch || !lastClaimWasFull else {
                    await doorbell.wait() // rung when a slot frees, rows are handed off, or at shutdown
                    continue
                }
                let limit = slots.reserve(upTo: min(free, configuration.claimBatchSize))
                guard limit > 0 else {
                    await doorbell.wait()
                    continue
                }
                let claimed: [ClaimedOperation]
                do {
                    claimed = try await claim(limit: limit)
                } catch {
                    slots.release(limit)
                    // Includes the rare race the ordering guard or the one-per-volume index
                    // catches; the next pass claims correctly.
                    logger.warning("claim failed", metadata: ["error": "\(String(reflecting: error))"])
                    await doorbell.wait(timeout: configuration.pollInterval)
                    continue
                }
                start(claimed, in: &handlersGroup)
                slots.release(limit)
                slots.noteClaim(got: claimed.count, of: limit)
                lastClaimWasFull = claimed.count == limit
                if claimed.count < limit {
                    await doorbell.wait(timeout: nextWakeUp())
                }
            }
            await drain(handlersGroup: &handlersGroup)
        }
    }

    private func start(_ claimed: [ClaimedOperation], in handlersGroup: inout DiscardingTaskGroup) {
        for operation in claimed {
            let state = InFlightState(checkpoint: operation.checkpoint)
            let earlier = registry.insert(operation, state)
            handlersGroup.addTask { await self.execute(operation, state: state, after: earlier) }
        }
        metrics.inFlight(registry.count)
    }

    /// Starts the rows the completion group commit claimed.
    private func startHandedOff(in handlersGroup: inout DiscardingTaskGroup) {
        let claimed = slots.takeHandedOff()
        guard !claimed.isEmpty else { return }
        start(claimed, in: &handlersGroup)
        slots.release(claimed.count)
    }

    private func claim(limit: Int) async throws -> [ClaimedOperation] {
        let start = ContinuousClock.now
        let rows = try await client.rows(
            QueueSQL.claim(worker: configuration.workerName, applianceVMId: configuration.applianceVMId,
                           limit: limit, leaseMilliseconds: configuration.leaseDuration.wholeMilliseconds),
            logger: logger)
        let claimed = try rows.map(ClaimedOperation.init(row:))
        if !claimed.isEmpty {
            metrics.claimed(count: claimed.count, seconds: (ContinuousClock.now - start).seconds)
        }
        return claimed
    }

    /// The fallback poll, sooner when one of this worker's retries becomes due.
    private func nextWakeUp() -> Duration {
        let now = ContinuousClock.now
        guard let retryAt = nextRetryAt.withLock({ $0 }) else { return configuration.pollInterval }
        if retryAt <= now {
            nextRetryAt.withLock { $0 = nil }
            return .zero
        }
        return min(configuration.pollInterval, retryAt - now)
    }

    func scheduleWakeUp(after delay: Duration) {
        let at = ContinuousClock.now + delay
        nextRetryAt.withLock { current in
            if current == nil || at < current! { current = at }
        }
    }

    /// Waits up to the grace period for in-flight operations, then interrupts the rest; their
    /// rows are released (pending, checkpoint kept) once their handlers have returned.
    private func drain(handlersGroup: inout DiscardingTaskGroup) async {
        let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
        startHandedOff(in: &handlersGroup)
        while registry.count > 0 && ContinuousClock.now < deadline {
            await doorbell.wait(timeout: deadline - ContinuousClock.now)
            startHandedOff(in: &handlersGroup)
        }
        if registry.count > 0 {
            logger.notice("grace period over; interrupting in-flight operations", metadata: ["count": "\(registry.count)"])
            phase.withLock { $0 = .stopping }
            handlersGroup.cancelAll()
        }
    }

    func noteReleased(_ operation: ClaimedOperation) {
        released.withLock { $0.append((operation.id, operation.claimToken)) }
    }

    private func releaseInterrupted() async {
        let claims = released.withLock { $0 }
        guard !claims.isEmpty else { return }
        do {
            let count = try await client.rows(
                QueueSQL.release(ids: claims.map(\.id), tokens: claims.map(\.token)), logger: logger).count
            logger.notice("released interrupted operations with their checkpoints", metadata: ["count": "\(count)"])
        } catch {
            logger.error("could not release interrupted operations; the rescuer will return them when their leases expire",
                         metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
