import NBD
import CloudStack
import CloudStackSimulator
import DevServices
import Foundation
import Operations
import Logging
import PostgresNIO
import Schema
import Synchronization
import VolumeClient
import Worker

/// `volumed demo`: a throwaway PostgreSQL, the CloudStack simulator, nbdkit and a worker, all
/// on this machine; a replication volume flow through the queue; nothing left behind.
struct Demo {
    let volumes = 3
    /// Set on Ctrl-C: the demo stops at its next step and cleans up as after any failure.
    let interruption: DemoInterruption

    func run() async throws {
        let logger = { var logger = Logger(label: "volumed-demo"); logger.logLevel = .error; return logger }()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-demo-\(UUID().uuidString.prefix(8))")
        let byId = root.appendingPathComponent("by-id"), disks = root.appendingPathComponent("disks"),
            exports = root.appendingPathComponent("exports")
        for folder in [byId, disks, exports] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(at: root) }

        let total = ContinuousClock.now
        var step = ContinuousClock.now
        func done(_ what: String) throws {
            print("  ✓ \(what) (\(elapsed(since: step)))")
            step = ContinuousClock.now
            try interruption.check()
        }
        print("volumed demo")
        let postgres = try await EphemeralPostgres.start()
        defer { postgres.stop() }
        try done("throwaway PostgreSQL on \(postgres.socketDirectory)")
        let appliance = UUID().uuidString.lowercased()
        let simulator = try await CloudStackSimulator.start(SimulatorConfiguration(
            apiKey: "demo-key", secretKey: "demo-secret", applianceVMID: appliance,
            byIDDirectory: byId, diskDirectory: disks, asyncDelay: .milliseconds(100)), logger: logger)
        try done("cloudstack-sim at \(simulator.apiURL) (appliance VM \(appliance))")
        let nbdkit = try await NbdkitServer.start(exportDirectory: exports.path, logger: logger)
        try done("nbdkit serving \(exports.path) on 127.0.0.1:\(nbdkit.port)")

        let url = try DatabaseURL(postgres.url())
        do {
            try await PostgresClient.withRunning(url, logger: logger) { client in
                let report = try await Migrator(logger: logger).migrate(client)
                print("  ✓ migrated: \(report.applied.map(\.fileName).joined(separator: ", "))")
                try interruption.check()
                let handlers = try await WorkerHandlers.make(WorkerHandlers.Settings(
                    cloudStack: CloudStackConfiguration(apiURL: simulator.apiURL, apiKey: "demo-key", secretKey: "demo-secret"),
                    byIdDirectory: byId.path, applianceVMId: appliance,
                    exports: ExportBackendSettings(exportDirectory: exports.path, port: nbdkit.port),
                    // The simulator's disks are backing files.
                    allowsRegularFileDevices: true), logger: logger)
                let worker = QueueWorker(client: client, database: url, handlers: handlers.handlers,
                                         configuration: WorkerConfiguration(applianceVMId: appliance), logger: logger)
                let running = Task { try await worker.run() }
                let queue = VolumeClient(client: client, database: url, logger: logger)
                do {
                    try await flow(queue: queue, client: client, appliance: appliance, nbdPort: nbdkit.port)
                } catch {
                    worker.beginShutdown()
                    _ = try? await running.value
                    queue.close()
                    await handlers.shutdown()
                    throw error
                }
                worker.beginShutdown()
                try await running.value
                queue.close()
                await handlers.shutdown()
                try await printStats(client, logger: logger)
            }
        } catch {
            await nbdkit.stop()
            await simulator.stop()
            throw error
        }
        await nbdkit.stop()
        await simulator.stop()
        print("done in \(elapsed(since: total)); PostgreSQL, simulator, nbdkit and temp files removed")
    }

    private func flow(queue: VolumeClient, client: PostgresClient, appliance: String, nbdPort: Int) async throws {
        func run(_ label: String, _ requests: [EnqueueRequest]) async throws -> [OperationRecord] {
            try interruption.check()
            let start = ContinuousClock.now
            let ids = try await requests.asyncMap { try await queue.enqueue($0) }
            var records: [OperationRecord] = []
            for (index, id) in ids.enumerated() {
                let record = try await queue.waitForCompletion(id, timeout: .seconds(120))
                guard record.status == .completed else {
                    throw DemoStepFailed("\(label) \(index + 1) ended \(record.status.rawValue): \(record.errorCode ?? "") \(record.error ?? "")")
                }
                records.append(record)
                print("    [\(index + 1)/\(ids.count)] \(label) \(record.volumeId ?? "") → \(record.response ?? "{}")")
            }
            print("  ✓ \(label) × \(ids.count) (\(elapsed(since: start)))")
            return records
        }
        print("replication volume flow, \(volumes) volumes:")
        let created = try await run("create", (1...volumes).map { index in
            EnqueueRequest(type: .create, request: """
                {"name": "demo-disk-\(index)", "size": \(1 << 30), "zone_id": "\(SimulatorConfiguration.zoneID)",
                 "disk_offering_id": "\(SimulatorConfiguration.customDiskOfferingID)"}
                """)
        })
        let volumeIds = created.compactMap(\.volumeId)
        let attached = try await run("attach", volumeIds.map { EnqueueRequest(type: .attach, volumeId: $0, vmId: appliance) })
        // What replication would have written: a marker at the start of each disk.
        for record in attached {
            guard let path = jsonField(record.response, "device_path") else { continue }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.write(contentsOf: Data("volumed demo \(record.volumeId!.prefix(8))".utf8))
            try handle.close()
        }
        let sourceVM = UUID().uuidString.lowercased()
        let exported = try await run("export", volumeIds.enumerated().map { index, volume in
            EnqueueRequest(type: .export, volumeId: volume, vmId: sourceVM,
                           request: #"{"job_id": "demo-job", "vm_name": "demo-vm", "disk_unit_number": \#(index)}"#)
        })
        let start = ContinuousClock.now
        for record in exported {
            try interruption.check()
            guard let name = jsonField(record.response, "export_name") else { continue }
            let bytes = try await readOverNBD(port: nbdPort, export: name, count: 21)
            print("    read nbd://127.0.0.1:\(nbdPort)/\(name): \"\(bytes)\"")
        }
        print("  ✓ read over NBD (\(elapsed(since: start)))")
        _ = try await run("detach", volumeIds.map { EnqueueRequest(type: .detach, volumeId: $0, request: #"{"force": true}"#) })
        _ = try await run("delete", volumeIds.map { EnqueueRequest(type: .delete, volumeId: $0) })
    }

    /// The first `count` bytes of an export, read by nbdcopy (libnbd) from the real server.
    private func readOverNBD(port: Int, export: String, count: Int) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-demo-read-\(UUID().uuidString.prefix(6))").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        try await ProcessRunner.run([try NbdTools.nbdcopy().path, "nbd://127.0.0.1:\(port)/\(export)", output])
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: output))
        defer { try? handle.close() }
        return String(decoding: try handle.read(upToCount: count) ?? Data(), as: UTF8.self)
    }

    private func printStats(_ client: PostgresClient, logger: Logger) async throws {
        print("volume_operation_stats (all time):")
        print("  type       status      operations  p50 s   p95 s")
        let rows = try await client.rows("""
            SELECT type, status, operations::int, coalesce(p50_seconds, 0)::float8, coalesce(p95_seconds, 0)::float8
            FROM volume_operation_stats WHERE window_name = 'all_time' ORDER BY type, status
            """, logger: logger)
        for row in rows {
            let (type, status, count, p50, p95) = try row.decode((String, String, Int, Double, Double).self)
            let columns = type.padding(toLength: 10, withPad: " ", startingAt: 0) + " " + status.padding(toLength: 11, withPad: " ", startingAt: 0)
            print("  " + columns + String(format: " %10d  %6.3f  %6.3f", count, p50, p95))
        }
    }
}

/// Ctrl-C, as the demo sees it: checked between steps, so the worker, the pool and the
/// services it started are stopped in order rather than torn down mid-write.
final class DemoInterruption: Sendable {
    struct Interrupted: Error, CustomStringConvertible {
        var description: String { "interrupted" }
    }

    private let requested = Mutex(false)

    func request() { requested.withLock { $0 = true } }

    func check() throws {
        if requested.withLock({ $0 }) { throw Interrupted() }
    }
}

func jsonField(_ json: String?, _ key: String) -> String? {
    guard let json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
    return object[key] as? String
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

func elapsed(since start: ContinuousClock.Instant) -> String {
    let (seconds, atto) = (ContinuousClock.now - start).components
    return String(format: "%.0f ms", Double(seconds) * 1000 + Double(atto) / 1e15)
}

/// A step of the flow did not end as the demo expects; says which and how.
struct DemoStepFailed: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
