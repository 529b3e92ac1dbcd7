import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization

/// Group commit for completions without mapping writes: while one UPDATE is in flight, the
/// completions that arrive wait and go in the next one. No delay is added at low load, and
/// at high load one statement (and one notifying commit) finishes a whole batch. A completion
/// that finds nothing in flight writes its own statement in its own task (no hop to the flush
/// loop on the way to its commit); the ones that queue up meanwhile go to the flush loop.
///
/// The same statement claims the next operations for the slots it frees (`ClaimAlong`), so a
/// worker spends one commit per operation, not two (a claim and a completion), when it claims
/// few rows at a time.
final class CompletionBatcher: Sendable {
    /// Claiming along with a flush: how, and for how many slots.
    struct ClaimAlong: Sendable {
        let worker: String
        let applianceVMId: String?
        let leaseMilliseconds: Int
        let slots: ClaimSlots
        /// How many rows to claim when a flush frees this many slots (0: none).
        let wanted: @Sendable (_ freeing: Int) -> Int
        /// Called after a flush that claimed rows (they are handed off in `slots`).
        let claimed: @Sendable (_ count: Int, _ seconds: Double) -> Void
    }

    private struct Entry {
        let id: UUID
        let token: String
        let response: String
        let continuation: CheckedContinuation<Bool, any Error>
    }

    private struct State {
        var entries: [Entry] = []
        /// Statements in flight: completions' own and the flush loop's.
        var inFlight = 0
    }

    private let client: PostgresClient
    private let logger: Logger
    private let maximumBatch: Int
    private let state = Mutex(State())
    private let doorbell = Doorbell()
    private let claimAlong: ClaimAlong?

    init(client: PostgresClient, logger: Logger, maximumBatch: Int = 500, claimAlong: ClaimAlong? = nil) {
        self.client = client
        self.logger = logger
        self.maximumBatch = maximumBatch
        self.claimAlong = claimAlong
    }

    /// Completes `id` with `response` under the claim `token`; true if that claim still held it
    /// (the row is now `completed`), false if its lease had been lost (nothing was changed).
    func complete(id: UUID, token: String, response: String) async throws -> Bool {
        let leading = state.withLock { state -> Bool in
            guard state.inFlight == 0 else { return false }
            state.inFlight += 1
            return true
        }
        guard leading else {
            return try await withCheckedThrowingContinuation { continuation in
                let wakeLoop = state.withLock { state -> Bool in
                    state.entries.append(Entry(id: id, token: token, response: response, continuation: continuation))
                    // The statement in flight may have ended meanwhile: the loop takes over.
                    return state.inFlight == 0
                }
                if wakeLoop { doorbell.ring() }
            }
        }
        defer { handOver() }
        return try await write(ids: [id], tokens: [token], responses: [response]).contains(id)
    }

    /// After a completion's own statement: what queued meanwhile goes to the flush loop.
    private func handOver() {
        let queued = state.withLock { state -> Bool in
            state.inFlight -= 1
            return !state.entries.isEmpty
        }
        if queued { doorbell.ring() }
    }

    /// The flush loop; runs until cancelled once nothing is left to flush.
    func run() async {
        while true {
            let (batch, othersInFlight) = state.withLock { state -> ([Entry], Bool) in
                let count = min(state.entries.count, maximumBatch)
                let batch = Array(state.entries.prefix(count))
                state.entries.removeFirst(count)
                if !batch.isEmpty { state.inFlight += 1 }
                return (batch, state.inFlight > 0)
            }
            if batch.isEmpty {
                if Task.isCancelled {
                    if !othersInFlight { return }
                    await Task.yield() // a completion's own statement still runs; what queues behind it comes here
                    continue
                }
                await doorbell.wait()
                continue
            }
            await flush(batch)
            state.withLock { $0.inFlight -= 1 }
        }
    }

    private func flush(_ batch: [Entry]) async {
        do {
            let completed = try await write(ids: batch.map(\.id), tokens: batch.map(\.token), responses: batch.map(\.response))
            for entry in batch { entry.continuation.resume(returning: completed.contains(entry.id)) }
        } catch {
            for entry in batch { entry.continuation.resume(throwing: error) }
        }
    }

    /// One statement completing these operations (and claiming along when the worker wants
    /// rows); returns the ids it completed.
    private func write(ids: [UUID], tokens: [String], responses: [String]) async throws -> Set<UUID> {
        guard let along = claimAlong else {
            return try await completeOnly(ids: ids, tokens: tokens, responses: responses)
        }
        let reserved = along.slots.reserve(upTo: along.wanted(ids.count), freeing: ids.count)
        guard reserved > 0 else { return try await completeOnly(ids: ids, tokens: tokens, responses: responses) }
        let start = ContinuousClock.now
        var completed = Set<UUID>()
        var claimed: [ClaimedOperation] = []
        do {
            let rows = try await client.rows(
                QueueSQL.completeAndClaim(ids: ids, tokens: tokens, responses: responses, worker: along.worker,
                                          applianceVMId: along.applianceVMId, limit: reserved,
                                          leaseMilliseconds: along.leaseMilliseconds),
                logger: logger)
            for row in rows {
                let cells = row.makeRandomAccess()
                if try cells["completed"].decode(Bool.self) {
                    completed.insert(try cells["id"].decode(UUID.self))
                } else {
                    claimed.append(try ClaimedOperation(row: row))
                }
            }
        } catch {
            along.slots.release(reserved)
            throw error
        }
        along.slots.handOff(claimed, reserved: reserved)
        if !claimed.isEmpty { along.claimed(claimed.count, (ContinuousClock.now - start).seconds) }
        return completed
    }

    private func completeOnly(ids: [UUID], tokens: [String], responses: [String]) async throws -> Set<UUID> {
        let rows = try await client.rows(QueueSQL.completeBatch(ids: ids, tokens: tokens, responses: responses), logger: logger)
        return Set(try rows.map { try $0.decode(UUID.self) })
    }
}
