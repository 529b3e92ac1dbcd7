import Schema
import Synchronization

/// The worker's free handler slots, shared by its two claimers: the claim loop, and the
/// completion group commit, which claims along with its completions in the same commit
/// (`CompletionBatcher`, migrations/0008_complete_and_claim.sql).
///
/// A claimer reserves slots before its statement and releases them once the rows it got are
/// registered, so the two never claim more than `concurrency` between them. Rows the group
/// commit claims are handed to the claim loop, which starts every handler (shutdown waits for
/// them there).
final class ClaimSlots: Sendable {
    private struct State {
        var reserved = 0
        var handedOff: [ClaimedOperation] = []
        var open = true
        var backlog = false
    }

    private let concurrency: Int
    private let registry: InFlightRegistry
    private let state = Mutex(State())

    init(concurrency: Int, registry: InFlightRegistry) {
        self.concurrency = concurrency
        self.registry = registry
    }

    /// Slots neither running a handler nor reserved by a claim in flight.
    var free: Int { concurrency - registry.count - state.withLock { $0.reserved } }

    /// Reserves up to `wanted` free slots, counting `freeing` more that the caller's own
    /// statement frees (the group commit's completions); none once the worker stops claiming.
    func reserve(upTo wanted: Int, freeing: Int = 0) -> Int {
        let running = registry.count
        return state.withLock { state in
            guard state.open else { return 0 }
            let count = max(0, min(wanted, concurrency - running + freeing - state.reserved))
            state.reserved += count
            return count
        }
    }

    /// Whether the last claim came back full: the queue probably holds more (claiming along
    /// with completions is only worth it then; an idle queue would cost a claim per completion).
    var backlog: Bool { state.withLock { $0.backlog } }

    func noteClaim(got claimed: Int, of limit: Int) {
        state.withLock { $0.backlog = claimed == limit }
    }

    /// Gives back reserved slots (after the claimed rows were registered, or the claim failed).
    func release(_ count: Int) {
        state.withLock { $0.reserved -= count }
    }

    /// Rows the group commit claimed with `reserved` slots: the unused ones are released, the
    /// rows stay reserved until the claim loop takes them.
    func handOff(_ claimed: [ClaimedOperation], reserved: Int) {
        state.withLock { state in
            state.reserved -= reserved - claimed.count
            state.handedOff += claimed
            state.backlog = claimed.count == reserved
        }
    }

    /// The rows handed off since the last call; their slots stay reserved until `release`.
    func takeHandedOff() -> [ClaimedOperation] {
        state.withLock { state in
            defer { state.handedOff = [] }
            return state.handedOff
        }
    }

    /// No more claims from here on (shutdown).
    func close() {
        state.withLock { $0.open = false }
    }
}
