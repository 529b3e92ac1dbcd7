import Foundation
import Synchronization

/// The operations this worker holds right now, for the heartbeat and for shutdown.
final class InFlightRegistry: Sendable {
    private let operations = Mutex<[UUID: InFlightState]>([:])

    func insert(_ id: UUID, _ state: InFlightState) {
        operations.withLock { $0[id] = state }
    }

    func remove(_ id: UUID) {
        _ = operations.withLock { $0.removeValue(forKey: id) }
    }

    var count: Int { operations.withLock { $0.count } }

    func snapshot() -> [UUID: InFlightState] { operations.withLock { $0 } }
}
