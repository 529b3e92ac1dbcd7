import Primitives
import Foundation
import Logging
import PostgresNIO
import Schema

/// Extends the leases of every claim this worker holds, every `heartbeatInterval`, in one
/// statement. A claim missing from the answer was lost (rescued after a stall): its handler is
/// stopped. A cancel request read here is passed to the handler.
///
/// One row must never stall the others: should the statement fail as a whole for anything but
/// the connection, this beat renews each claim on its own, so only a row the database refuses
/// runs out of lease.
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
            let renewed = try await renew(held)
            noteLost(held, renewed: renewed)
        } catch let error as PSQLError where error.serverInfo != nil {
            // The database refused the statement (not the connection): renew claim by claim.
            logger.error("lease heartbeat refused by the database; renewing each operation on its own",
                         metadata: ["error": "\(databaseErrorText(error))"])
            var renewed: [String: Bool] = [:]
            var refused = Set<String>()
            for claim in held {
                do {
                    renewed.merge(try await renew([claim]), uniquingKeysWith: { $1 })
                } catch {
                    refused.insert(claim.token)
                    logger.error("the database refused to renew this operation's lease",
                                 metadata: ["operation": "\(claim.id)", "error": "\(databaseErrorText(error))"])
                }
            }
            noteLost(held.filter { !refused.contains($0.token) }, renewed: renewed)
        } catch {
            // The leases run on; the next beat tries again. If the database stays away past the
            // lease, the rescuer hands the rows to another worker and the next beat notices.
            logger.warning("lease heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Renews `claims`; returns, for each claim still held, whether cancellation was requested.
    private func renew(_ claims: [InFlightRegistry.Held]) async throws -> [String: Bool] {
        let rows = try await client.rows(
            QueueSQL.heartbeat(ids: claims.map(\.id), tokens: claims.map(\.token),
                               leaseMilliseconds: configuration.leaseDuration.wholeMilliseconds),
            logger: logger)
        var renewed: [String: Bool] = [:]
        for row in rows {
            let (token, cancelRequested) = try row.decode((String, Bool).self)
            renewed[token] = cancelRequested
        }
        return renewed
    }

    private func noteLost(_ held: [InFlightRegistry.Held], renewed: [String: Bool]) {
        for claim in held {
            if renewed[claim.token] == true { claim.state.markCancelRequested() }
        }
        // Claims that finished since the snapshot are gone from the registry too; only those
        // still registered and not renewed were really lost.
        for claim in held where renewed[claim.token] == nil && registry.contains(token: claim.token) && !claim.state.settling {
            logger.warning("lost the lease of an operation; stopping its handler", metadata: ["operation": "\(claim.id)"])
            metrics.leaseLost()
            claim.state.markLeaseLost()
        }
    }
}
