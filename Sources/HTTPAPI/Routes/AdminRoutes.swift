import Foundation
import Hummingbird
import Operations

/// `POST /admin/force-sync`: runs reconciliation now and answers with its report.
struct AdminRoutes {
    let forceSync: APIDependencies.ForceSync?

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.post("admin/force-sync") { _, _ in
            guard let forceSync else {
                throw APIError.unavailable("reconciliation is not available in this process; run `volumed serve`, which wires it")
            }
            let started = ContinuousClock.now
            let report: any Encodable & Sendable
            do {
                report = try await forceSync()
            } catch let running as ReconcileAlreadyRunning {
                // Not a failure of this request: someone else is doing the same work now.
                throw APIError.conflict(running.description)
            }
            let (seconds, attoseconds) = (ContinuousClock.now - started).components
            return JSONResponse.make(.object([
                "message": "Force sync completed",
                "timestamp": .time(Date()),
                "duration_ms": .double((Double(seconds) + Double(attoseconds) / 1e18) * 1000),
                "report": try JSONValue(encoding: report),
            ]))
        }
    }
}
