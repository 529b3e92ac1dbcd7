import Devices
import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import Operations
import Logging
import PostgresNIO
import Schema
import Synchronization
import TestSupport
import Testing
import Worker

/// One handler test's world: a fresh migrated database, an in-process CloudStack simulator
/// with hot-plug into temporary by-id and disk directories, and a `OperationEnvironment` pointed
/// at both. Torn down after `body`, pass or fail.
struct HandlerHarness: Sendable {
    static let apiKey = "handler-test-key"
    static let secretKey = "handler-test-secret"

    let db: TestDatabase
    let simulator: CloudStackSimulator
    let environment: OperationEnvironment
    let byIDDirectory: URL
    let diskDirectory: URL

    var appliance: String { simulator.configuration.applianceVMID }
    var client: CloudStackClient { environment.cloudStack }

    static func with(
        asyncDelay: Duration = .milliseconds(10),
        faults: SimulatorFaults = SimulatorFaults(),
        hotPlug: Bool = true,
        applianceDiskBus: SimulatorDiskBus = .virtio,
        clientSecretKey: String = HandlerHarness.secretKey,
        maxDataVolumesPerVM: Int = 6,
        deviceWaitTimeout: Duration = .seconds(5),
        vmStopTimeout: Duration = .seconds(10),
        jobTimeout: Duration = .seconds(20),
        exportRemover: (any ExportRemover)? = nil,
        exporter: ExportPublisher? = nil,
        defaultPageSize: Int = 500,
        _ body: @escaping @Sendable (HandlerHarness) async throws -> Void
    ) async throws {
        try await withDatabase { db in
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("handler-tests-\(UUID().uuidString)")
            let byID = root.appendingPathComponent("by-id")
            let disks = root.appendingPathComponent("disks")
            try FileManager.default.createDirectory(at: byID, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: root) }
            var simLogger = Logger(label: "cloudstack-sim-handler-test")
            simLogger.logLevel = .warning
            var configuration = SimulatorConfiguration(
                apiKey: apiKey, secretKey: secretKey,
                byIDDirectory: hotPlug ? byID : nil, diskDirectory: hotPlug ? disks : nil,
                asyncDelay: asyncDelay, maxDataVolumesPerVM: maxDataVolumesPerVM, faults: faults)
            configuration.applianceDiskBus = applianceDiskBus
            configuration.defaultPageSize = defaultPageSize
            let simulator = try await CloudStackSimulator.start(configuration, logger: simLogger)
            let client = CloudStackClient(
                configuration: CloudStackConfiguration(
                    apiURL: simulator.apiURL, apiKey: apiKey, secretKey: clientSecretKey, requestTimeout: .seconds(10)),
                httpClient: HTTPClient.shared, logger: testLogger)
            let environment = OperationEnvironment(
                cloudStack: client, resolver: ByIdResolver(directory: byID.path, allowsRegularFiles: true),
                applianceVMId: simulator.configuration.applianceVMID, deviceWaitTimeout: deviceWaitTimeout,
                jobTimeout: jobTimeout, vmStopTimeout: vmStopTimeout, exportRemover: exportRemover,
                exporter: exporter, logger: testLogger)
            let harness = HandlerHarness(db: db, simulator: simulator, environment: environment, byIDDirectory: byID, diskDirectory: disks)
            do {
                try await body(harness)
            } catch {
                await simulator.stop()
                throw error
            }
            await simulator.stop()
        }
    }

    /// A worker on the appliance running this environment's handlers (or `handlers`).
    func startWorker(handlers: [OperationType: any OperationHandler]? = nil,
                     _ configure: (inout WorkerConfiguration) -> Void = { _ in }) -> RunningWorker {
        var configuration = fastConfiguration(appliance: appliance)
        configure(&configuration)
        return TestSupport.startWorker(db, handlers: handlers ?? environment.handlers(), configuration: configuration)
    }

    /// Enqueues by plain SQL, as an orchestrator would.
    func enqueue(_ type: String, volume: String? = nil, vm: String? = nil, request: String = "{}",
                 checkpoint: String? = nil, maxAttempts: Int = 5) async throws -> UUID {
        // A checkpoint is the queue's bookkeeping, which an INSERT cannot set: the row is held
        // back (run_after) until the checkpoint an earlier worker would have left is in place.
        let text = try await db.scalar("""
            INSERT INTO volume_operations (type, volume_id, vm_id, request, max_attempts, run_after)
            VALUES ('\(type)', \(sqlText(volume)), \(sqlText(vm)), '\(request)'::jsonb, \(maxAttempts),
                    now() + interval '\(checkpoint == nil ? 0 : 1) hour')
            RETURNING id::text
            """)
        let id = try #require(text.flatMap(UUID.init(uuidString:)))
        if let checkpoint {
            try await db.query("""
                UPDATE volume_operations SET checkpoint = \(sqlText(checkpoint))::jsonb, run_after = now() WHERE id = '\(id)'
                """)
        }
        return id
    }

    /// Enqueues one operation (with `checkpoint`, as an earlier worker left it), runs a fresh
    /// worker until the operation is terminal, and returns its row.
    func runOnFreshWorker(_ type: String, volume: String? = nil, vm: String? = nil, request: String = "{}",
                          checkpoint: String? = nil) async throws -> OperationRow {
        let id = try await enqueue(type, volume: volume, vm: vm, request: request, checkpoint: checkpoint)
        let worker = startWorker()
        do {
            let row = try await finished(id)
            try await worker.stop()
            return row
        } catch {
            try? await worker.stop()
            throw error
        }
    }

    /// Sends a request whose CloudStack job is then held pending for `duration` (a slow
    /// management server), as the request a worker killed before checkpointing its job id
    /// leaves behind. Later jobs run normally.
    func sentAndHeldPending<T: Sendable>(for duration: Duration = .seconds(2), _ send: () async throws -> T) async throws -> T {
        let milliseconds = Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        await simulator.setFaults(SimulatorFaults(stuckRate: 1, stuckDelayMs: milliseconds))
        do {
            let result = try await send()
            await simulator.setFaults(SimulatorFaults())
            return result
        } catch {
            await simulator.setFaults(SimulatorFaults())
            throw error
        }
    }

    /// Waits until the operation is terminal and returns its row.
    func finished(_ id: UUID, timeout: Duration = .seconds(30)) async throws -> OperationRow {
        try await eventually(timeout: timeout, "operation \(id) terminal") {
            let status = try await status(db, id)
            return status == "completed" || status == "failed" || status == "cancelled"
        }
        return try await operation(id)
    }

    func operation(_ id: UUID) async throws -> OperationRow {
        let rows = try await db.client.query(
            PostgresQuery(unsafeSQL: """
                SELECT status, error_code, error, response::text, attempts, volume_id, claimed_by, checkpoint::text
                FROM volume_operations WHERE id = '\(id)'
                """), logger: testLogger)
        for try await row in rows {
            let (status, code, error, response, attempts, volumeId, claimedBy, checkpoint) =
                try row.decode((String, String?, String?, String?, Int, String?, String?, String?).self)
            return OperationRow(status: status, errorCode: code, error: error, response: response, attempts: attempts,
                                volumeId: volumeId, claimedBy: claimedBy, checkpoint: checkpoint)
        }
        throw MissingRow(what: "operation \(id)")
    }

    func mapping(_ volumeId: String) async throws -> MappingRow? {
        let rows = try await db.client.query(
            PostgresQuery(unsafeSQL: """
                SELECT vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes
                FROM device_mappings WHERE volume_id = '\(volumeId)'
                """), logger: testLogger)
        for try await row in rows {
            let (vm, mode, deviceId, byId, device, size) = try row.decode((String, String, Int32?, String?, String?, Int64?).self)
            return MappingRow(vmId: vm, mode: mode, cloudStackDeviceId: deviceId, byIdPath: byId, devicePath: device, sizeBytes: size)
        }
        return nil
    }

    /// A data volume made directly in CloudStack (not through volumed), for preconditions.
    func cloudVolume(sizeGB: Int = 1) async throws -> String {
        let (volumeId, jobId) = try await client.createVolume(
            name: "pre-\(UUID().uuidString.prefix(6))", zoneId: SimulatorConfiguration.zoneID,
            diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: sizeGB)
        _ = try await client.waitForJob(jobId: jobId, timeout: .seconds(10))
        return volumeId
    }

    /// Attaches directly in CloudStack and waits for the job.
    func cloudAttach(_ volumeId: String, to vmId: String) async throws {
        let jobId = try await client.attachVolume(id: volumeId, virtualMachineId: vmId)
        _ = try await client.waitForJob(jobId: jobId, timeout: .seconds(10))
    }

    func sideEffects(_ volumeId: String) async -> SimulatorState.SideEffects {
        await simulator.state().sideEffects(for: volumeId)
    }

    func backingFile(_ volumeId: String) -> String {
        realPath(diskDirectory.appendingPathComponent(volumeId + ".img").path)
    }
}

struct OperationRow: Sendable {
    var status: String
    var errorCode: String?
    var error: String?
    var response: String?
    var attempts: Int
    var volumeId: String?
    var claimedBy: String?
    var checkpoint: String?

    /// The response as a JSON object.
    func json() throws -> [String: Any] {
        let data = Data((response ?? "null").utf8)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

struct MappingRow: Sendable, Equatable {
    var vmId: String
    var mode: String
    var cloudStackDeviceId: Int32?
    var byIdPath: String?
    var devicePath: String?
    var sizeBytes: Int64?
}

/// Records the volumes it was asked to unexport and marks their exports removed, as the
/// export manager will.
final class MarkingExportRemover: ExportRemover {
    private let calls = Mutex<[String]>([])
    var volumes: [String] { calls.withLock { $0 } }

    func removeExports(volumeId: String, context: OperationContext) async throws {
        calls.withLock { $0.append(volumeId) }
        try await context.database.query(
            "UPDATE vm_export_mappings SET status = 'removed', updated_at = now() WHERE volume_id = \(volumeId)",
            logger: context.logger)
    }
}

func insertExport(_ db: TestDatabase, volumeId: String, vmId: String, name: String) async throws {
    try await db.query("""
        INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port)
        VALUES ('\(vmId)', 0, '\(volumeId)', '\(name)', '/dev/disk/by-id/virtio-x', 10809)
        """)
}

func realPath(_ path: String) -> String {
    URL(fileURLWithPath: path).resolvingSymlinksInPath().path
}

private func sqlText(_ value: String?) -> String {
    value.map { "'\($0.replacingOccurrences(of: "'", with: "''"))'" } ?? "NULL"
}

let GiB: Int64 = 1 << 30

struct MissingRow: Error, CustomStringConvertible {
    var what: String
    var description: String { "no row for \(what)" }
}
