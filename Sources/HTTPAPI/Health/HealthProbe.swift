import NBD
import Foundation
import Operations
import Logging
import Worker

/// One real check of each dependency, run concurrently and each bounded by `timeout`:
/// the database (a query), CloudStack (a signed `listZones`), the NBD server (a real
/// handshake), the by-id directory, and this process's worker.
///
/// The CloudStack and NBD answers are reused for `externalCheckMaxAge`: a monitor (or an
/// attacker) polling `/api/v1/health` in a loop must not turn into a stream of signed
/// CloudStack calls and NBD handshakes. Concurrent requests share one check in flight.
struct HealthProbe: Sendable {
    let dependencies: APIDependencies
    var timeout: Duration = .seconds(3)
    var externalCheckMaxAge: Duration = .seconds(5)
    private let cloudStackCache = CachedCheck<Check>()
    private let nbdCache = CachedCheck<Check>()

    init(dependencies: APIDependencies) {
        self.dependencies = dependencies
    }

    enum Check: Sendable, Equatable {
        case healthy
        case unhealthy(String)
        /// Nothing to check: the dependency is not configured in this process.
        case notConfigured

        var word: String {
            switch self {
            case .healthy: return "healthy"
            case .unhealthy: return "unhealthy"
            case .notConfigured: return "not_configured"
            }
        }

        var detail: String {
            if case .unhealthy(let reason) = self { return "unhealthy: \(reason)" }
            return word
        }

        var isUnhealthy: Bool { if case .unhealthy = self { return true } else { return false } }
    }

    /// The overall status (`healthy`, `degraded`, `unhealthy`) and the answer's body.
    func report() async -> (status: String, body: JSONValue) {
        async let database = check { try await ReadSQL(client: dependencies.database, logger: dependencies.logger).ping() }
        async let cloudStack = cloudStackCache.value(maxAge: externalCheckMaxAge) { await checkCloudStack() }
        async let nbd = nbdCache.value(maxAge: externalCheckMaxAge) { await checkNBD() }
        let (devices, deviceDetails) = deviceMonitor()
        let (databaseCheck, cloudCheck, nbdCheck) = await (database, cloudStack, nbd)

        var details: [String: JSONValue] = deviceDetails
        details["database"] = .string(databaseCheck.detail)
        details["cloudstack"] = .string(cloudCheck.detail)
        details["nbd_server"] = .string(nbdCheck.detail)
        details["by_id_directory"] = .string(devices.detail)
        if let nbdPort = dependencies.nbdPort { details["nbd_port"] = .string(String(nbdPort)) }
        var workerStopping = false
        if let worker = dependencies.worker {
            let status = worker.status
            workerStopping = status.phase == "stopping"
            details["worker"] = .string(status.phase)
            details["worker_name"] = .string(status.name)
            details["active_operations"] = .string(String(status.inFlight))
            details["worker_concurrency"] = .string(String(status.concurrency))
        } else {
            details["worker"] = "not running in this process"
        }

        let overall: String
        if databaseCheck.isUnhealthy {
            // Nothing can be enqueued or read: the API is of no use.
            overall = "unhealthy"
        } else if cloudCheck.isUnhealthy || nbdCheck.isUnhealthy || devices.isUnhealthy || workerStopping {
            // Requests are still queued and answered; operations wait or retry.
            overall = "degraded"
        } else {
            overall = "healthy"
        }
        // The original's clients decode `details` as a map of strings: every value is one.
        let body = JSONValue.object([
            "status": .string(overall),
            "timestamp": .time(Date()),
            "cloudstack_health": .string(cloudCheck.word),
            "database_health": .string(databaseCheck.word),
            "device_monitor": .string(devices.word),
            "details": .object(details),
        ])
        return (overall, body)
    }

    private func check(_ body: @escaping @Sendable () async throws -> Void) async -> Check {
        do {
            try await withDeadline(timeout, onTimeout: TimedOut(after: timeout), body)
            return .healthy
        } catch {
            return .unhealthy("\(error)")
        }
    }

    private func checkCloudStack() async -> Check {
        guard let cloudStack = dependencies.cloudStack else { return .notConfigured }
        return await check { _ = try await cloudStack.listZones() }
    }

    /// A handshake asking for an export no one has: an NBD server answers "unknown export",
    /// which proves it is up and speaking the protocol.
    private func checkNBD() async -> Check {
        guard let port = dependencies.nbdPort else { return .notConfigured }
        let probeName = ExportName.prefix + "00000000-0000-0000-0000-000000000000"
        let timeout = self.timeout
        return await check {
            do {
                _ = try await NBDHandshake.check(host: "127.0.0.1", port: port, exportName: probeName, timeout: timeout)
            } catch let error as NBDExportError where error.kind == .exportUnknown {
                return
            }
        }
    }

    /// The by-id directory exists and can be listed; how many links it holds and how many
    /// waits watch it now.
    private func deviceMonitor() -> (Check, [String: JSONValue]) {
        guard let resolver = dependencies.resolver else { return (.notConfigured, [:]) }
        var details: [String: JSONValue] = [
            "by_id_dir": .string(resolver.directory),
            "by_id_waits_in_progress": .string(String(resolver.activity.inProgress)),
        ]
        do {
            details["device_count"] = .string(String(try FileManager.default.contentsOfDirectory(atPath: resolver.directory).count))
            return (.healthy, details)
        } catch {
            return (.unhealthy("cannot list \(resolver.directory) (\(error.localizedDescription)); check VOLUMED_BY_ID_DIR"), details)
        }
    }
}

/// The last answer of one check and when it was taken; a caller within `maxAge` gets it
/// again, and callers arriving while a check runs wait for that check instead of starting
/// their own.
actor CachedCheck<Value: Sendable> {
    private var last: (value: Value, at: ContinuousClock.Instant)?
    private var running: Task<Value, Never>?

    func value(maxAge: Duration, _ compute: @escaping @Sendable () async -> Value) async -> Value {
        if let last, ContinuousClock.now - last.at < maxAge { return last.value }
        if let running { return await running.value }
        let task = Task { await compute() }
        running = task
        let value = await task.value
        last = (value, ContinuousClock.now)
        running = nil
        return value
    }
}
