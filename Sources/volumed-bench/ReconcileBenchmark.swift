import ArgumentParser
import CloudStack
import CloudStackSimulator
import Foundation
import Logging
import NBD
import Operations
import PostgresNIO
import Schema

/// `volumed-bench reconcile`: the length of one reconcile pass at appliance scale and the
/// CloudStack calls it makes, against the simulator. `--volumes` data volumes exist in
/// CloudStack and in `volumes`; `--attached` of them are attached to the appliance (by-id
/// links from the simulator's hot-plug, mapped in `device_mappings`), `--remote` to another
/// VM (mapped as remote), the rest detached. Every pass finds everything in order: it reads
/// and compares, repairs nothing.
struct ReconcileBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reconcile", abstract: "Reconcile pass time and CloudStack calls per pass.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Data volumes in CloudStack and in the volumes table.") var volumes: Int = 1000
    @Option(help: "Of them, attached to the appliance (mapped, with by-id links).") var attached: Int = 300
    @Option(help: "Of them, attached to another VM (mapped as remote).") var remote: Int = 100
    @Option(help: "Passes measured.") var passes: Int = 3
    @Option(help: "Latency the simulator adds to each API call during the passes (a real management server's).") var latencyMs: Int = 0

    func validate() throws {
        guard volumes > 0, attached >= 0, remote >= 0, attached + remote <= volumes, passes > 0 else {
            throw ValidationError("--attached plus --remote must not exceed --volumes; all positive")
        }
    }

    func run() async throws {
        let logger = benchLogger()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-bench-reconcile-\(UUID().uuidString.prefix(6))")
        let byId = root.appendingPathComponent("by-id"), disks = root.appendingPathComponent("disks"), exports = root.appendingPathComponent("exports")
        for folder in [byId, disks, exports] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(at: root) }
        let appliance = UUID().uuidString.lowercased()
        let simulatorConfiguration = SimulatorConfiguration(
            apiKey: "k", secretKey: "s", applianceVMID: appliance, byIDDirectory: byId, diskDirectory: disks,
            asyncDelay: .zero, maxDataVolumesPerVM: max(attached, remote) + 1)
        let simulator = try await CloudStackSimulator.start(simulatorConfiguration, logger: logger)
        let (volumes, attached, remote, passes, latencyMs, simulatorURL) = (
            self.volumes, self.attached, self.remote, self.passes, self.latencyMs, simulator.apiURL)
        let timings = try await database.withDatabase(logger: logger) { _, client in
            let handlers = try await WorkerHandlers.make(WorkerHandlers.Settings(
                cloudStack: CloudStackConfiguration(apiURL: simulatorURL, apiKey: "k", secretKey: "s"),
                byIdDirectory: byId.path, applianceVMId: appliance,
                exports: ExportBackendSettings(exportDirectory: exports.path), allowsRegularFileDevices: true), logger: logger)
            let cloudStack = handlers.cloudStack
            do {
                let ids = try await Self.createVolumes(volumes, cloudStack: cloudStack)
                for (index, id) in ids.enumerated() {
                    let vm = index < attached ? appliance : index < attached + remote ? SimulatorConfiguration.customerVMID : nil
                    if let vm {
                        let job = try await cloudStack.attachVolume(id: id, virtualMachineId: vm)
                        _ = try await cloudStack.waitForJob(jobId: job, timeout: .seconds(30), initialPollInterval: .milliseconds(1))
                    }
                }
                try await Self.record(ids, attached: attached, remote: remote, appliance: appliance, cloudStack: cloudStack,
                                      simulator: simulator, database: client, logger: logger)
                var faults = await simulator.faults()
                faults.latencyMs = latencyMs
                await simulator.setFaults(faults)
                var timings: [(seconds: Double, calls: [String: Int], checked: Int)] = []
                let reconciler = handlers.reconciler(database: client, logger: logger)
                for _ in 0..<passes {
                    let before = await simulator.state().requestCounts
                    let start = ContinuousClock.now
                    let report = try await reconciler.reconcile(dryRun: false)
                    let seconds = (ContinuousClock.now - start).seconds
                    let after = await simulator.state().requestCounts
                    guard report.applied.isEmpty, report.needsAttention.isEmpty else {
                        throw BenchError("the pass should find everything in order: \(report.summary)")
                    }
                    let calls = after.reduce(into: [String: Int]()) { calls, entry in
                        let delta = entry.value - (before[entry.key] ?? 0)
                        if delta > 0 { calls[entry.key] = delta }
                    }
                    timings.append((seconds, calls, report.volumesChecked))
                }
                await handlers.shutdown()
                return timings
            } catch {
                await handlers.shutdown()
                throw error
            }
        }
        await simulator.stop()
        for (index, pass) in timings.enumerated() {
            let calls = pass.calls.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print(String(format: "reconcile pass %d: %d volumes checked (%d attached here, %d remote), %d ms per call: %.3f s; ",
                         index + 1, pass.checked, attached, remote, latencyMs, pass.seconds)
                + "CloudStack calls: \(pass.calls.values.reduce(0, +)) (\(calls))")
        }
    }

    /// Creates the volumes a few at a time (the simulator finishes each job at once).
    private static func createVolumes(_ count: Int, cloudStack: CloudStackClient) async throws -> [String] {
        try await withThrowingTaskGroup(of: String.self) { group in
            var ids: [String] = []
            for index in 0..<count {
                if index >= 16, let id = try await group.next() { ids.append(id) }
                group.addTask {
                    let (id, job) = try await cloudStack.createVolume(
                        name: "bench-\(index)", zoneId: SimulatorConfiguration.zoneID,
                        diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
                    _ = try await cloudStack.waitForJob(jobId: job, timeout: .seconds(30), initialPollInterval: .milliseconds(1))
                    return id
                }
            }
            for try await id in group { ids.append(id) }
            return ids.sorted()
        }
    }

    /// The rows volumed would hold after attaching them itself.
    private static func record(_ ids: [String], attached: Int, remote: Int, appliance: String, cloudStack: CloudStackClient,
                               simulator: CloudStackSimulator, database: PostgresClient, logger: Logger) async throws {
        let listed = Dictionary(try await cloudStack.listVolumes().map { ($0.id.value, $0) }) { first, _ in first }
        for (index, id) in ids.enumerated() {
            guard let volume = listed[id] else { throw BenchError("volume \(id) is not listed") }
            try await database.query(VolumesTable.adopt(volumeId: id, name: volume.name, sizeBytes: volume.size, zoneId: volume.zoneid.value,
                                                        diskOfferingId: volume.diskofferingid?.value, state: volume.state), logger: logger)
            if index < attached {
                guard let link = simulator.byIDLinkPath(forVolumeID: id), let device = realpath(link, nil) else {
                    throw BenchError("no by-id link for volume \(id)")
                }
                defer { free(device) }
                try await database.query(DeviceMappingsTable.adopt(
                    volumeId: id, vmId: appliance, cloudStackDeviceId: volume.deviceid, byIdPath: link,
                    devicePath: String(cString: device), sizeBytes: volume.size), logger: logger)
            } else if index < attached + remote {
                try await database.query(DeviceMappingsTable.upsert(
                    volumeId: id, vmId: SimulatorConfiguration.customerVMID, mode: "remote", cloudStackDeviceId: volume.deviceid,
                    byIdPath: nil, devicePath: nil, sizeBytes: volume.size), logger: logger)
            }
        }
    }
}
