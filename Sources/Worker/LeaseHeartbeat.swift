import Foundation
import Logging
import PostgresNIO
import Schema

/// Extends the leases of every operation this worker holds, every `heartbeatInterval`, in one
/// statement. An operation missing from the answer was lost (rescued after a stall): its
/// handler is stopped. A cancel request read here is passed to the handler.
struct LeaseHeartbeat: Sendable {
    let client: PostgresClient
    let registry: InFlightRegistry
    let configuration: WorkerConfiguration
    let logger: Logger
    let metrics: WorkerMetrics

    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            await beat()
        }
    }

    func beat() async {
        let held = registry.snapshot()
        guard !held.isEmpty else { return }
        do {
            let rows = try await client.rows(
                QueueSQL.heartbeat(worker: configuration.workerName, ids: Array(held.keys),
                                   leaseMilliseconds: configuration.leaseDuration.milliseconds),
                logger: logger)
            var renewed = Set<UUID>()
            for row in rows {
                let (id, cancelRequested) = try row.decode((UUID, Bool).self)
                renewed.insert(id)
                if cancelRequested { held[id]?.markCancelRequested() }
            }
            // Rows that finished since the snapshot are gone from the registry too; only
            // those still registered and not renewed were really lost.
            let current = registry.snapshot()
            for (id, state) in held where !renewed.contains(id) && current[id] != nil && !state.settling {
                logger.warning("lost the lease of an operation; stopping its handler", metadata: ["operation": "\(id)"])
                metrics.leaseLost()
                state.markLeaseLost()
            }
        } catch {
            // The leases run on; the next beat tries again. If the database stays away past the
            // lease, the rescuer hands the rows to another worker and the next beat notices.
            logger.warning("lease heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
