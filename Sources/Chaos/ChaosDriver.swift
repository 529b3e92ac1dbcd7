import CloudStackSimulator
import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization
import VolumeClient

/// How one enqueued operation ended, against what the plan expected of it.
struct StepOutcome: Sendable {
    /// The step (`attach`, `repeat-attach`, …) or the bad row's kind.
    let label: String
    let type: String
    let operationID: UUID
    /// Nil: must complete. Otherwise the error codes it may fail with.
    let expectedFailureCodes: Set<String>?
    /// The row's final status, or `not finished` when the run ran out of time.
    let status: String
    let errorCode: String?
    let error: String?

    var asExpected: Bool {
        guard let codes = expectedFailureCodes else { return status == "completed" }
        return status == "failed" && errorCode.map(codes.contains) == true
    }
}

/// A chain as it ran: its volume (once created) and each step's outcome, up to the first
/// step that did not end as expected.
struct ChainOutcome: Sendable {
    let chain: VolumeChain
    var volumeID: String?
    var steps: [(step: ChaosStep, outcome: StepOutcome)] = []

    var finished: Bool { steps.count == chain.steps.count && steps.allSatisfy(\.outcome.asExpected) }

    func completedCount(_ step: ChaosStep) -> Int {
        steps.filter { $0.step == step && $0.outcome.status == "completed" }.count
    }
}

struct DriveOutcome: Sendable {
    var chains: [ChainOutcome]
    var badRows: [(row: BadRow, outcome: StepOutcome)]
}

/// The orchestrator of a chaos run: runs the plan's chains (many volumes at once), enqueuing
/// each step when the one before has finished, through `VolumeClient` (idempotency keys, so
/// an enqueue retried across a PostgreSQL restart never adds a second row).
struct ChaosDriver: Sendable {
    let world: ChaosWorld
    let plan: ChaosPlan
    let queue: VolumeClient
    let deadline: ContinuousClock.Instant
    let logger: Logger
    let counters = ProgressCounters()

    /// Operations finished or given up, of `plan.operationCount`: the PostgreSQL restarts time
    /// themselves by it.
    var progress: Int { counters.finished.load(ordering: .relaxed) + counters.skipped.load(ordering: .relaxed) }

    /// What the unfinished chains wait for, by idempotency key.
    var stillRunning: [String] { counters.current.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" } } }

    /// Runs every item, `parallelVolumes` at a time.
    func run() async -> DriveOutcome {
        var chains: [ChainOutcome] = []
        var badRows: [(row: BadRow, outcome: StepOutcome)] = []
        enum Finished: Sendable { case chain(ChainOutcome), bad(BadRow, StepOutcome) }
        await withTaskGroup(of: Finished.self) { group in
            var pending = plan.items.makeIterator()
            func addNext() -> Bool {
                guard let item = pending.next() else { return false }
                switch item {
                case .chain(let chain): group.addTask { .chain(await self.run(chain)) }
                case .bad(let row): group.addTask { .bad(row, await self.run(row)) }
                }
                return true
            }
            for _ in 0..<world.configuration.parallelVolumes where !addNext() { break }
            for await finished in group {
                switch finished {
                case .chain(let outcome): chains.append(outcome)
                case .bad(let row, let outcome): badRows.append((row, outcome))
                }
                _ = addNext()
            }
        }
        return DriveOutcome(chains: chains.sorted { $0.chain.index < $1.chain.index },
                            badRows: badRows.sorted { $0.row.index < $1.row.index })
    }

    private func run(_ chain: VolumeChain) async -> ChainOutcome {
        var outcome = ChainOutcome(chain: chain)
        for (position, step) in chain.steps.enumerated() {
            let request = enqueueRequest(step, chain: chain, volumeID: outcome.volumeID, position: position)
            let result = await perform(request, label: step.rawValue, expectedFailureCodes: step.expectedFailureCodes)
            outcome.steps.append((step, result.outcome))
            if step == .create, result.outcome.status == "completed" { outcome.volumeID = result.volumeID }
            guard result.outcome.asExpected, outcome.volumeID != nil else {
                counters.skipped.add(chain.steps.count - position - 1, ordering: .relaxed)
                logger.warning("chain stopped", metadata: [
                    "chain": "\(chain.index)", "step": "\(step.rawValue)", "status": "\(result.outcome.status)",
                    "error_code": "\(result.outcome.errorCode ?? "")", "error": "\(result.outcome.error ?? "")",
                ])
                break
            }
        }
        return outcome
    }

    private func run(_ row: BadRow) async -> StepOutcome {
        var request = EnqueueRequest(type: OperationType(rawValue: row.operationType), volumeId: row.volumeID,
                                     idempotencyKey: "chaos-\(world.configuration.seed)-bad-\(row.index)", maxAttempts: Self.maxAttempts)
        switch row.kind {
        case .attachUnknownVolume: request.vmId = world.appliances[0].vmID
        case .detachUnknownVolume: break
        case .exportUnknownVolume:
            request.vmId = world.appliances[1].vmID
            request.request = #"{"job_id": "chaos-bad", "vm_name": "bad-source", "disk_unit_number": 0}"#
        }
        return await perform(request, label: row.kind.rawValue, expectedFailureCodes: row.expectedFailureCodes).outcome
    }

    /// An orchestrator that expects its workers to be killed gives every operation room for
    /// many attempts: each kill costs the operations in flight on that worker one attempt.
    static let maxAttempts = 50

    private func enqueueRequest(_ step: ChaosStep, chain: VolumeChain, volumeID: String?, position: Int) -> EnqueueRequest {
        let appliance = world.appliances[chain.applianceIndex]
        var request = EnqueueRequest(type: OperationType(rawValue: step.operationType), volumeId: volumeID,
                                     idempotencyKey: "chaos-\(world.configuration.seed)-\(chain.index)-\(position)",
                                     maxAttempts: Self.maxAttempts)
        switch step {
        case .create:
            request.request = """
                {"name": "chaos-\(world.configuration.seed)-\(chain.index)", "size": \(Int64(chain.sizeGiB) << 30),
                 "zone_id": "\(SimulatorConfiguration.zoneID)", "disk_offering_id": "\(SimulatorConfiguration.customDiskOfferingID)"}
                """
        case .attach, .repeatAttach:
            request.vmId = appliance.vmID
        case .attachToUnknownVM:
            request.vmId = chain.unknownVMID
        case .export:
            request.vmId = chain.sourceVMID
            request.request = #"{"job_id": "chaos-job-\#(chain.index)", "vm_name": "source-\#(chain.index)", "disk_unit_number": 0}"#
        case .unexport, .detach, .delete:
            break
        }
        return request
    }

    private func countFinished() {
        counters.finished.add(1, ordering: .relaxed)
    }

    /// Enqueues (again after a failed attempt: the idempotency key returns the same row) and
    /// waits until the row is terminal or the run's deadline passes.
    private func perform(_ request: EnqueueRequest, label: String, expectedFailureCodes: Set<String>?)
        async -> (outcome: StepOutcome, volumeID: String?)
    {
        func unfinished(_ id: UUID?, _ why: String) -> (StepOutcome, String?) {
            (StepOutcome(label: label, type: request.type.rawValue, operationID: id ?? UUID(),
                         expectedFailureCodes: expectedFailureCodes, status: "not finished", errorCode: nil, error: why), nil)
        }
        let key = request.idempotencyKey ?? label
        counters.current.withLock { $0[key] = "\(label): enqueuing" }
        defer { counters.current.withLock { _ = $0.removeValue(forKey: key) } }
        var id: UUID?
        while id == nil {
            do {
                id = try await bounded(.seconds(10), "enqueue") { try await queue.enqueue(request) }
            } catch {
                counters.current.withLock { $0[key] = "\(label): enqueue failed: \(error)" }
                guard ContinuousClock.now < deadline else { return unfinished(nil, "could not enqueue: \(error)") }
                logger.log(level: error is ChaosError ? .warning : .debug, "enqueue failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        guard let id else { return unfinished(nil, "no id") }
        counters.current.withLock { $0[key] = "\(label): waiting for operation \(id)" }
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return unfinished(id, "still running at the run's deadline") }
            do {
                let record = try await bounded(min(remaining, .seconds(20)) + .seconds(5), "wait") {
                    try await queue.waitForCompletion(id, timeout: min(remaining, .seconds(20)))
                }
                countFinished()
                let outcome = StepOutcome(label: label, type: record.type, operationID: id, expectedFailureCodes: expectedFailureCodes,
                                          status: record.status.rawValue, errorCode: record.errorCode, error: record.error)
                return (outcome, record.volumeId)
            } catch let error as VolumeClientError where error.kind == .timeout {
                if ContinuousClock.now >= deadline { return unfinished(id, "still running at the run's deadline") }
            } catch let error as VolumeClientError where error.kind == .notFound {
                countFinished()
                return (StepOutcome(label: label, type: request.type.rawValue, operationID: id, expectedFailureCodes: expectedFailureCodes,
                                    status: "lost", errorCode: nil, error: "the database no longer has the row its enqueue returned"), nil)
            } catch {
                // PostgreSQL restarting: the waiter reads again once it is back.
                logger.log(level: error is ChaosError ? .warning : .debug, "waiting failed; retrying",
                           metadata: ["operation": "\(id)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}

final class ProgressCounters: Sendable {
    /// Operations that reached a terminal status.
    let finished = Atomic<Int>(0)
    /// Operations the chains will not enqueue because their chain stopped early.
    let skipped = Atomic<Int>(0)
    /// What each running chain or bad row is doing now, for the report of a run that stalls.
    let current = Mutex<[String: String]>([:])
}

/// Runs `body`, but gives up after `limit`: a database call that hangs must not hang the run.
func bounded<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ChaosError("\(what) did not finish within \(limit)")
        }
        return value
    }
}
