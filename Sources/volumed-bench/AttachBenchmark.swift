import NBD
import CloudStack
import ArgumentParser
import CloudStackSimulator
import Foundation
import Operations
import Logging
import PostgresNIO
import Schema
import VolumeClient
import Worker

/// `volumed-bench attach`: end-to-end attach latency through the queue against the simulator
/// (`--async-delay-ms 0` by default), and the time from the by-id link's creation (the
/// simulator's udev emulation) to the waiter learning that the mapping row committed.
struct AttachBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attach", abstract: "Attach latency and link→mapping time.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Attach/detach rounds.") var rounds: Int = 60
    @Option(help: "The simulator's async job delay.") var asyncDelayMs: Int = 0

    func run() async throws {
        let logger = benchLogger()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-bench-attach-\(UUID().uuidString.prefix(6))")
        let byId = root.appendingPathComponent("by-id"), disks = root.appendingPathComponent("disks"), exports = root.appendingPathComponent("exports")
        for folder in [byId, disks, exports] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(at: root) }
        let appliance = UUID().uuidString.lowercased()
        let simulator = try await CloudStackSimulator.start(SimulatorConfiguration(
            apiKey: "k", secretKey: "s", applianceVMID: appliance, byIDDirectory: byId, diskDirectory: disks,
            asyncDelay: .milliseconds(asyncDelayMs)), logger: logger)
        let (rounds, simulatorURL) = (self.rounds, simulator.apiURL)
        let (attach, linkToMapping) = try await database.withDatabase(logger: logger) { url, client in
            let parsed = try DatabaseURL(url)
            let handlers = try await WorkerHandlers.make(WorkerHandlers.Settings(
                cloudStack: CloudStackConfiguration(apiURL: simulatorURL, apiKey: "k", secretKey: "s"),
                byIdDirectory: byId.path, applianceVMId: appliance,
                exports: ExportBackendSettings(exportDirectory: exports.path), allowsRegularFileDevices: true), logger: logger)
            let worker = QueueWorker(client: client, database: parsed, handlers: handlers.handlers,
                                     configuration: WorkerConfiguration(applianceVMId: appliance), logger: logger)
            let running = Task { try await worker.run() }
            let queue = VolumeClient(client: client, database: parsed, logger: logger)
            defer { queue.close() }
            let created = try await queue.waitForCompletion(try await queue.enqueue(EnqueueRequest(type: .create, request: """
                {"name": "bench", "size": \(1 << 30), "zone_id": "\(SimulatorConfiguration.zoneID)", "disk_offering_id": "\(SimulatorConfiguration.customDiskOfferingID)"}
                """)), timeout: .seconds(30))
            guard let volume = created.volumeId else { throw BenchError("create failed: \(created.error ?? "")") }
            var attach: [Double] = []
            var linkToMapping: [Double] = []
            for _ in 0..<rounds {
                let start = ContinuousClock.now
                let id = try await queue.enqueue(EnqueueRequest(type: .attach, volumeId: volume, vmId: appliance))
                let record = try await queue.waitForCompletion(id, timeout: .seconds(30))
                let woken = Date()
                attach.append((ContinuousClock.now - start).seconds * 1000)
                guard record.status == .completed, let link = jsonString(record.response, "device_path") else {
                    throw BenchError("attach failed: \(record.error ?? "")")
                }
                var info = stat()
                guard lstat(link, &info) == 0 else { throw BenchError("no link at \(link)") }
                let linkCreated = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                linkToMapping.append((woken.timeIntervalSince1970 - linkCreated) * 1000)
                let detach = try await queue.waitForCompletion(
                    try await queue.enqueue(EnqueueRequest(type: .detach, volumeId: volume)), timeout: .seconds(30))
                guard detach.status == .completed else { throw BenchError("detach failed: \(detach.error ?? "")") }
            }
            worker.beginShutdown()
            try await running.value
            await handlers.shutdown()
            return (attach.sorted(), linkToMapping.sorted())
        }
        await simulator.stop()
        print(String(format: "attach rounds %d, async delay %d ms: end-to-end attach p50 %.1f ms p99 %.1f ms; by-id link → mapping committed p50 %.2f ms p99 %.2f ms",
                     rounds, asyncDelayMs, attach.percentile(0.5), attach.percentile(0.99),
                     linkToMapping.percentile(0.5), linkToMapping.percentile(0.99)))
    }
}

func jsonString(_ json: String?, _ key: String) -> String? {
    guard let json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
    return object[key] as? String
}
