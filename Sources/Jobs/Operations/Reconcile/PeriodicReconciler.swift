import Foundation
import Logging
import ServiceLifecycle

/// Runs a reconcile pass every `interval` (with ±20 % jitter, so workers do not contend in
/// step). Every worker runs this service; the reconcile lock lets one of them reconcile at a
/// time and the others skip that turn, as with the rescuer.
///
/// Graceful shutdown ends the wait between passes at once; a pass already running finishes
/// (each repair is a transaction of its own, and a pass takes a moment).
public struct PeriodicReconciler: Service {
    public let reconciler: Reconciler
    public let interval: Duration
    let logger: Logger

    public init(reconciler: Reconciler, interval: Duration, logger: Logger) {
        self.reconciler = reconciler
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let interval = self.interval
        logger.info("periodic reconcile on", metadata: ["interval": "\(interval)"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: interval * Double.random(in: 0.8...1.2))
                }
            } catch {
                return
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            await runOnce()
        }
    }

    /// One pass, if no other process is reconciling; nil when it did not run or failed (logged).
    @discardableResult
    public func runOnce() async -> ReconcileReport? {
        do {
            return try await reconciler.reconcile(dryRun: false)
        } catch is ReconcileAlreadyRunning {
            logger.debug("another process is reconciling; skipping this turn")
        } catch {
            logger.warning("reconcile pass failed; the next one retries", metadata: ["error": "\(error)"])
        }
        return nil
    }
}
