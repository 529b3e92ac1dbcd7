import Foundation
import Schema
import Synchronization

/// The claims this worker holds right now, for the heartbeat, for shutdown and for counting
/// free slots.
///
/// Keyed by claim token, not by operation id: after a stall, the rescuer may hand an operation
/// back to the queue and this same worker may claim it again while the first handler has not
/// noticed yet. Both claims are then registered; `insert` returns the earlier one, whose handler
/// the new claim stops and waits for before it runs (`QueueWorker.execute`), so two handlers of
/// one operation never run side by side in one process, and the earlier one, whose token the
/// database no longer accepts, writes nothing.
final class InFlightRegistry: Sendable {
    struct Held: Sendable {
        let id: UUID
        let token: String
        let state: InFlightState
    }

    private let claims = Mutex<[String: Held]>([:])

    /// Registers a claim; returns the state of an earlier claim of the same operation that is
    /// still running here, if any.
    @discardableResult
    func insert(_ operation: ClaimedOperation, _ state: InFlightState) -> InFlightState? {
        claims.withLock { claims in
            let earlier = claims.values.first { $0.id == operation.id }?.state
            claims[operation.claimToken] = Held(id: operation.id, token: operation.claimToken, state: state)
            return earlier
        }
    }

    func remove(token: String) {
        _ = claims.withLock { $0.removeValue(forKey: token) }
    }

    func contains(token: String) -> Bool { claims.withLock { $0[token] != nil } }

    var count: Int { claims.withLock { $0.count } }

    func snapshot() -> [Held] { claims.withLock { Array($0.values) } }
}
