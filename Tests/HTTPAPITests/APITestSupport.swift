import NBD
import Devices
import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Daemon
import DevServices
import Foundation
import HTTPAPI
import Operations
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Schema
import ServiceLifecycle
import TestSupport
import Testing
import VolumeClient
import Worker

/// One API test's world: a fresh migrated database, an in-process CloudStack simulator that
/// hot-plugs appliance disks into a scratch by-id directory, and the HTTP API on an ephemeral
/// loopback port, reached with AsyncHTTPClient.
///
/// `.apiOnly` runs the API alone (rows stay as the API wrote them); `.serve` runs what
/// `volumed serve` runs — the same `WorkerServices` + `ServeServices` ServiceGroup — with a
/// real nbdkit, so operations go through a real worker.
struct APIWorld: Sendable {
    enum Mode: Sendable { case apiOnly, serve }

    static let apiKey = "api-test-key"
    static let secretKey = "api-test-secret"

    let db: TestDatabase
    let simulator: CloudStackSimulator
    let baseURL: String
    let byIDDirectory: URL
    let diskDirectory: URL
    let exportDirectory: URL
    let token: String?

    var appliance: String { simulator.configuration.applianceVMID }

    static func with(
        _ mode: Mode = .apiOnly, token: String? = nil, asyncDelay: Duration = .milliseconds(10),
        exportWait: Duration = .seconds(ExportWaitSetting.defaultSeconds),
        headerReadTimeout: Duration = HTTPSettings.defaultHeaderReadTimeout, apiLogger: Logger = testLogger,
        webhookSecret: String? = nil,
        _ body: @escaping @Sendable (APIWorld) async throws -> Void
    ) async throws {
        try await withDatabase { db in
            let scratch = try Scratch()
            defer { scratch.remove() }
            let (byID, disks, exports) = (scratch.byID, scratch.disks, scratch.exports)
            let simulator = try await scratch.startSimulator(asyncDelay: asyncDelay)
            var settings = HTTPSettings(host: "127.0.0.1", port: 0, token: token, exportWait: exportWait,
                                        headerReadTimeout: headerReadTimeout)
            settings.webhookSecret = webhookSecret
            let (ports, portSink) = AsyncStream<Int>.makeStream()
            let onListening: @Sendable (Int) async -> Void = { port in
                portSink.yield(port)
                portSink.finish()
            }
            let group: ServiceGroup
            let running: Task<Void, any Error>
            var nbdkit: NbdkitServer?
            switch mode {
            case .apiOnly:
                let volumes = VolumeClient(client: db.client, database: db.url, logger: testLogger)
                let cloudStack = CloudStackClient(
                    configuration: CloudStackConfiguration(apiURL: simulator.apiURL, apiKey: apiKey, secretKey: secretKey,
                                                           requestTimeout: .seconds(5)),
                    httpClient: HTTPClient.shared, logger: testLogger)
                let dependencies = APIDependencies(
                    database: db.client, volumes: volumes, cloudStack: cloudStack, resolver: ByIdResolver(directory: byID.path, allowsRegularFiles: true),
                    nbdPort: nil, worker: nil, forceSync: nil, registry: MetricsSetup.registry, logger: apiLogger)
                group = ServiceGroup(configuration: .init(
                    services: [VolumedAPI.application(dependencies, settings: settings, onListening: onListening)], logger: testLogger))
                running = Task { try await group.run() }
            case .serve:
                let server = try await NbdkitServer.start(exportDirectory: exports.path)
                nbdkit = server
                let workerServices = try await workerServices(database: db.url, simulator: simulator, byID: byID,
                                                              exports: exports, nbdPort: server.port)
                let serve = ServeServices.make(worker: workerServices, http: settings, registry: MetricsSetup.registry,
                                               logger: testLogger, onListening: onListening)
                group = serve.serviceGroup(signals: [], logger: testLogger)
                running = Task {
                    defer { serve.volumes.close() }
                    try await workerServices.run(group)
                }
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await running.value
                throw APIWorldError(description: "the HTTP API stopped before listening")
            }
            let world = APIWorld(db: db, simulator: simulator, baseURL: "http://127.0.0.1:\(port)", byIDDirectory: byID,
                                 diskDirectory: disks, exportDirectory: exports, token: token)
            var failure: (any Error)?
            do { try await body(world) } catch { failure = error }
            await group.triggerGracefulShutdown()
            do { try await running.value } catch { failure = failure ?? error }
            await nbdkit?.stop()
            await simulator.stop()
            if let failure { throw failure }
        }
    }

    /// A worker's services on the simulator's appliance (what `volumed serve` runs beside its
    /// API), with its own CloudStack client.
    static func workerServices(database: DatabaseURL, simulator: CloudStackSimulator, byID: URL, exports: URL,
                               nbdPort: Int) async throws -> WorkerServices {
        try await WorkerServices.make(
            database: database, configuration: fastConfiguration(appliance: simulator.configuration.applianceVMID),
            handlers: WorkerHandlers.Settings(
                cloudStack: CloudStackConfiguration(apiURL: simulator.apiURL, apiKey: apiKey, secretKey: secretKey,
                                                    requestTimeout: .seconds(5)),
                byIdDirectory: byID.path, applianceVMId: simulator.configuration.applianceVMID,
                exports: ExportBackendSettings(exportDirectory: exports.path, port: nbdPort),
                deviceWaitTimeout: .seconds(10), allowsRegularFileDevices: true),
            reconcileInterval: nil, logger: testLogger)
    }

    // MARK: HTTP

    struct Answer: Sendable {
        let status: Int
        let text: String
        let headers: [String: String]

        /// The body as a JSON object (fails the test when it is not one).
        func object() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
        }

        func array() throws -> [[String: Any]] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "not a JSON array: \(text)")
        }

        /// The `{error, code, details}` shape, checked; returns (error, code, details).
        func apiError() throws -> (message: String, code: String, details: [String: Any]) {
            let object = try object()
            #expect(Set(object.keys) == ["error", "code", "details"], "error shape: \(text)")
            return (try #require(object["error"] as? String), try #require(object["code"] as? String),
                    try #require(object["details"] as? [String: Any]))
        }
    }

    /// Sends one request. The world's token goes along unless `authorization` says otherwise
    /// (`.some(nil)`: no header at all).
    func send(_ method: HTTPMethod, _ path: String, json: String? = nil, headers: [(String, String)] = [],
              authorization: String?? = .none) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        let header = authorization ?? token.map { "Bearer \($0)" }
        if let header { request.headers.add(name: "Authorization", value: header) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        var headerMap: [String: String] = [:]
        for header in response.headers { headerMap[header.name.lowercased()] = header.value }
        return Answer(status: Int(response.status.code), text: String(buffer: body), headers: headerMap)
    }

    func get(_ path: String) async throws -> Answer { try await send(.GET, path) }

    func post(_ path: String, _ json: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        try await send(.POST, path, json: json, headers: headers)
    }

    // MARK: CloudStack, database and devices

    /// A client of the simulator, for preconditions made directly in CloudStack.
    var cloudStack: CloudStackClient {
        CloudStackClient(configuration: CloudStackConfiguration(apiURL: simulator.apiURL, apiKey: Self.apiKey, secretKey: Self.secretKey),
                         httpClient: HTTPClient.shared, logger: testLogger)
    }

    /// A 1 GiB data volume made directly in CloudStack (not through volumed).
    func cloudVolume() async throws -> String {
        let (volumeId, jobId) = try await cloudStack.createVolume(
            name: "pre-\(UUID().uuidString.prefix(6))", zoneId: zone, diskOfferingId: offering, sizeGB: 1)
        _ = try await cloudStack.waitForJob(jobId: jobId, timeout: .seconds(10))
        return volumeId
    }

    func operationCount() async throws -> Int {
        try await db.count("SELECT count(*)::text FROM volume_operations")
    }

    /// Waits until the operation is terminal; returns its status.
    func finished(_ id: String, timeout: Duration = .seconds(30)) async throws -> String {
        try await eventually(timeout: timeout, "operation \(id) to finish") {
            ["completed", "failed", "cancelled"].contains(try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") ?? "")
        }
        return try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") ?? ""
    }

    /// A disk of this appliance as udev leaves it: a backing file and its by-id link.
    @discardableResult
    func plugDisk(_ volumeId: String, bytes: Int = 1 << 20) throws -> String {
        let file = diskDirectory.appendingPathComponent(volumeId + ".img")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data(count: bytes))
        let link = byIDDirectory.appendingPathComponent("virtio-" + CloudStackSimulator.diskSerial(forVolumeID: volumeId)).path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file.path)
        return link
    }

    /// A `device_mappings` row as the attach handler writes it.
    func insertMapping(_ volumeId: String, vm: String, mode: String, byIdPath: String?, devicePath: String?, size: Int64 = 1 << 30) async throws {
        func sql(_ text: String?) -> String { text.map { "'\($0)'" } ?? "NULL" }
        try await db.query("""
            INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes)
            VALUES ('\(volumeId)', '\(vm)', '\(mode)', 5, \(sql(byIdPath)), \(sql(devicePath)), \(size))
            """)
    }
}

/// Scratch by-id, disk and export directories, and a simulator hot-plugging into them.
struct Scratch: Sendable {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("api-tests-\(UUID().uuidString)")
    var byID: URL { root.appendingPathComponent("by-id") }
    var disks: URL { root.appendingPathComponent("disks") }
    var exports: URL { root.appendingPathComponent("exports") }

    init() throws {
        for folder in [byID, disks, exports] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    /// The environment of a real `volumed serve` process on this scratch appliance: the
    /// simulator's endpoint and appliance, these by-id and export folders (regular files
    /// allowed as disks: the simulator's hot-plug emulation), the given nbdkit and HTTP ports.
    func serveEnvironment(databaseURL: String, simulator: CloudStackSimulator, nbdPort: Int, httpPort: Int) -> [String: String] {
        [
            "DATABASE_URL": databaseURL, "CLOUDSTACK_API_URL": simulator.apiURL,
            "CLOUDSTACK_API_KEY": APIWorld.apiKey, "CLOUDSTACK_SECRET_KEY": APIWorld.secretKey,
            "VOLUMED_APPLIANCE_VM_ID": simulator.configuration.applianceVMID, "VOLUMED_BY_ID_DIR": byID.path,
            "VOLUMED_ALLOW_FILE_DEVICES": "1",
            "VOLUMED_NBD_EXPORT_DIR": exports.path, "VOLUMED_NBD_PORT": "\(nbdPort)",
            "VOLUMED_HTTP_ADDR": "127.0.0.1:\(httpPort)",
        ]
    }

    func startSimulator(asyncDelay: Duration = .milliseconds(10)) async throws -> CloudStackSimulator {
        var logger = Logger(label: "cloudstack-sim-api-test")
        logger.logLevel = .warning
        return try await CloudStackSimulator.start(
            SimulatorConfiguration(apiKey: APIWorld.apiKey, secretKey: APIWorld.secretKey, byIDDirectory: byID,
                                   diskDirectory: disks, asyncDelay: asyncDelay),
            logger: logger)
    }
}

struct APIWorldError: Error, CustomStringConvertible {
    let description: String
}

/// The operation object's keys (CONTRACT §8), all present on every answer.
let operationKeys: Set<String> = ["id", "type", "status", "volume_id", "vm_id", "request", "response", "error",
                                  "created_at", "updated_at", "completed_at"]

/// The device mapping's keys (CONTRACT §8).
let deviceKeys: Set<String> = ["id", "volume_id", "volume_uuid", "vm_id", "device_path", "operation_mode",
                               "cloudstack_state", "linux_state", "size", "last_sync", "created_at", "updated_at"]

/// An RFC 3339 time as Go's time.Time reads it.
func isRFC3339(_ value: Any?) -> Bool {
    guard let text = value as? String else { return false }
    return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil
        || (try? Date.ISO8601FormatStyle().parse(text)) != nil
}

func jsonObject(_ text: String?) -> [String: Any]? {
    guard let text else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

let zone = SimulatorConfiguration.zoneID
let offering = SimulatorConfiguration.customDiskOfferingID

func createBody(name: String = "api-vol", size: Int64 = 1 << 30) -> String {
    #"{"name": "\#(name)", "size": \#(size), "disk_offering_id": "\#(offering)", "zone_id": "\#(zone)", "metadata": {"purpose": "test"}}"#
}
