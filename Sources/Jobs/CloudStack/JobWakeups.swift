import Foundation
import Synchronization

/// "Look now" for jobs that are being waited on, by the volume or VM they work on: a CloudStack
/// webhook delivery (`POST /cloudstack/webhook` of `volumed serve`) names an entity, and every
/// `waitForJob` on a job of that entity in this process polls at once instead of at its next
/// planned time. Nothing else is taken from the delivery: the poll decides.
///
/// Across processes through PostgreSQL: the process that receives a delivery wakes its own
/// waits and NOTIFYs `channel` with `relayPayload(entity:)`; every volumed process LISTENs there
/// (Daemon's `CloudStackEventRelay`) and wakes its waits on that entity with `wake(relayed:)`,
/// skipping its own notifications (already woken). Anyone who may NOTIFY can only cause such
/// "look now" polls.
package final class JobWakeups: Sendable {
    /// The channel deliveries are relayed on to the other volumed processes.
    package static let channel = "volumed_cloudstack_entity"

    private struct Entry {
        var entity: String
        /// A wake that came while the waiter was polling: its next sleep returns at once.
        var pendingWake = false
        var parked: CheckedContinuation<Bool, Never>?
        /// Which sleep `parked` belongs to, so a late timer of an earlier sleep does nothing.
        var sleep: UInt64 = 0
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let nextID = Atomic<UInt64>(0)
    private let lastDelivery = Mutex<ContinuousClock.Instant?>(nil)
    /// This process, in relayed payloads, so it skips its own.
    private let origin = UUID().uuidString.lowercased()

    /// How long after a delivery webhooks count as working (`isLive`).
    static let liveWindow: Duration = .seconds(600)

    package init() {}

    /// Wakes every wait on `entity` (a volume or VM id, any case); returns how many.
    @discardableResult
    package func wake(entity: String) -> Int {
        lastDelivery.withLock { $0 = .now }
        let key = entity.lowercased()
        let woken = entries.withLock { all -> [CheckedContinuation<Bool, Never>?] in
            var woken: [CheckedContinuation<Bool, Never>?] = []
            for (id, entry) in all where entry.entity == key {
                woken.append(entry.parked)
                all[id]?.parked = nil
                all[id]?.pendingWake = entry.parked == nil
            }
            return woken
        }
        for continuation in woken { continuation?.resume(returning: true) }
        return woken.count
    }

    /// What to NOTIFY on `channel` so the other processes wake their waits on `entity`.
    package func relayPayload(entity: String) -> String {
        origin + " " + entity.lowercased()
    }

    /// Wakes the waits on the entity a relayed payload names (see `relayPayload`); nothing for
    /// this process's own payloads, or for one that does not name a UUID. Returns how many.
    @discardableResult
    package func wake(relayed payload: String) -> Int {
        let parts = payload.split(separator: " ")
        guard parts.count == 2, parts[0] != origin, UUID(uuidString: String(parts[1])) != nil else { return 0 }
        return wake(entity: String(parts[1]))
    }

    /// A signed delivery came within `liveWindow`: waits then keep only a slow fallback poll.
    var isLive: Bool {
        lastDelivery.withLock { $0.map { $0.duration(to: .now) < Self.liveWindow } ?? false }
    }

    /// Waits in progress (tests wait for one before delivering).
    package var waiting: Int { entries.withLock { $0.count } }

    /// A wait on a job of `entity` begins; `end` it when the wait returns.
    func begin(entity: String) -> UInt64 {
        let id = nextID.add(1, ordering: .relaxed).newValue
        entries.withLock { $0[id] = Entry(entity: entity.lowercased()) }
        return id
    }

    func end(_ id: UInt64) {
        entries.withLock { $0.removeValue(forKey: id) }?.parked?.resume(returning: false)
    }

    /// Sleeps until `deadline` or until `wake(entity:)` names the wait's entity (or named it
    /// since the last sleep); true when woken. Throws only on cancellation.
    @discardableResult
    func sleep(_ id: UInt64, until deadline: ContinuousClock.Instant) async throws -> Bool {
        let sleep = nextID.add(1, ordering: .relaxed).newValue
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            self?.resume(id, sleep: sleep)
        }
        let woken = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = entries.withLock { all -> Bool? in
                    guard var entry = all[id] else { return false }
                    if entry.pendingWake {
                        all[id]?.pendingWake = false
                        return true
                    }
                    guard deadline > .now, !Task.isCancelled else { return false }
                    entry.parked = continuation
                    entry.sleep = sleep
                    all[id] = entry
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            resume(id, sleep: sleep)
        }
        timer.cancel()
        try Task.checkCancellation()
        return woken
    }

    private func resume(_ id: UInt64, sleep: UInt64) {
        let parked = entries.withLock { all -> CheckedContinuation<Bool, Never>? in
            guard let entry = all[id], entry.sleep == sleep, let parked = entry.parked else { return nil }
            all[id]?.parked = nil
            return parked
        }
        parked?.resume(returning: false)
    }
}
