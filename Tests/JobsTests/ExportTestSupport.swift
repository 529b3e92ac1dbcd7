import NBD
import Devices
import DevServices
import Foundation
import Operations
import PostgresNIO
import Schema
import TestSupport
import Worker

/// One export test's world: a fresh migrated PostgreSQL, a real nbdkit on loopback serving
/// a scratch export directory, a scratch by-id directory, and a worker of the appliance
/// `applianceVM` running the export handlers through the queue.
struct ExportWorld: Sendable {
    let db: TestDatabase
    let appliance: NBDTestAppliance

    var backend: NbdkitDirectoryBackend { appliance.backend }
    var port: Int { appliance.server.port }

    /// Runs `body` with a worker whose export handlers use `backend` (the nbdkit directory
    /// backend by default); stops the worker and nbdkit afterwards, also on failure.
    static func run(
        backend makeBackend: (@Sendable (NBDTestAppliance) throws -> any NBDExportBackend)? = nil,
        _ body: @escaping @Sendable (ExportWorld) async throws -> Void
    ) async throws {
        try await withDatabase { db in
            let appliance = try await NBDTestAppliance.start()
            let world = ExportWorld(db: db, appliance: appliance)
            do {
                let backend = try makeBackend?(appliance) ?? appliance.backend
                let worker = startWorker(db, handlers: world.handlers(backend: backend),
                                         configuration: fastConfiguration(appliance: applianceVM))
                var failure: (any Error)?
                do { try await body(world) } catch { failure = error }
                try await worker.stop()
                if let failure { throw failure }
            } catch {
                await appliance.stop()
                throw error
            }
            await appliance.stop()
        }
    }

    /// The handlers a production worker registers for exports, plus `detach` standing in for
    /// a forced detach that calls the remover (the real one is the other handlers' work).
    func handlers(backend: any NBDExportBackend) -> [OperationType: any OperationHandler] {
        let remover = BackendExportRemover(backend: backend)
        return [
            .export: ExportHandler(backend: backend, resolver: ByIdResolver(directory: appliance.byId, allowsRegularFiles: true),
                                   checkTimeout: .seconds(3)),
            .unexport: UnexportHandler(backend: backend),
            .detach: ClosureHandler { operation, context in
                try await remover.removeExports(volumeId: operation.volumeId!, context: context)
                return OperationOutcome(response: "{}")
            },
        ]
    }

    /// A volume attached to the appliance as the attach handler leaves it: random bytes in a
    /// backing file, the by-id link to it, and its `device_mappings` row.
    @discardableResult
    func attach(_ volumeId: String, bytes: Int = 256 * 1024) async throws -> (byIdPath: String, bytes: Data) {
        let volume = try appliance.attachVolume(volumeId, bytes: bytes)
        try await db.query("""
            INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes)
            VALUES ('\(volumeId)', '\(applianceVM)', 'appliance', 4, '\(volume.byIdPath)', '/dev/vdc', \(bytes))
            """)
        return volume
    }

    /// Enqueues an operation with plain SQL, as an orchestrator would.
    func enqueue(_ type: String, volume: String, vm: String? = nil, request: String) async throws -> UUID {
        try await insertOperation(db, type: type, volume: volume, vm: vm,
                                  request: request.replacingOccurrences(of: "'", with: "''"), maxAttempts: 2)
    }

    func exportRequest(job: String = "job-1", vmName: String = "source-vm", disk: Int = 0) -> String {
        #"{"job_id":"\#(job)","vm_name":"\#(vmName)","disk_unit_number":\#(disk)}"#
    }

    /// Enqueues an export and waits for it to finish.
    func export(_ volume: String, vm: String = otherVM, disk: Int = 0, vmName: String = "source-vm") async throws -> OperationResult {
        try await finished(enqueue("export", volume: volume, vm: vm, request: exportRequest(vmName: vmName, disk: disk)))
    }

    func unexport(_ volume: String, exportName: String? = nil) async throws -> OperationResult {
        let request = exportName.map { #"{"export_name":"\#($0)"}"# } ?? "{}"
        return try await finished(enqueue("unexport", volume: volume, request: request))
    }

    /// Waits until the operation is terminal and returns what the table says about it.
    func finished(_ id: UUID) async throws -> OperationResult {
        try await eventually("operation \(id) to finish") {
            ["completed", "failed", "cancelled"].contains(try await status(db, id) ?? "")
        }
        let rows = try await db.client.query(
            "SELECT status, response::text, error, error_code FROM volume_operations WHERE id = \(id)", logger: testLogger)
        for try await (status, response, error, code) in rows.decode((String, String?, String?, String?).self) {
            return OperationResult(id: id, status: status, response: response.map(JSONObject.init) ?? JSONObject(), error: error, errorCode: code)
        }
        throw ScratchError("operation \(id) vanished")
    }

    /// The `vm_export_mappings` row of `exportName`, or nil.
    func mapping(_ exportName: String) async throws -> MappingSnapshot? {
        let rows = try await db.client.query("""
            SELECT id, vm_id, disk_unit_number, volume_id, device_path, nbd_port, job_id, vm_name, status,
                   created_at::text, updated_at::text
            FROM vm_export_mappings WHERE export_name = \(exportName)
            """, logger: testLogger)
        for try await row in rows.decode((Int64, String, Int, String, String, Int, String?, String?, String, String, String).self) {
            return MappingSnapshot(
                id: row.0, vmId: row.1, diskUnitNumber: row.2, volumeId: row.3, devicePath: row.4, nbdPort: row.5,
                jobId: row.6, vmName: row.7, status: row.8, createdAt: row.9, updatedAt: row.10)
        }
        return nil
    }

    /// Names in the export directory nbdkit serves, hidden ones included (a leftover
    /// temporary entry would be a bug too).
    func exportDirectoryEntries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: appliance.exports).sorted()
    }
}

struct OperationResult: Sendable, CustomStringConvertible {
    let id: UUID
    let status: String
    let response: JSONObject
    let error: String?
    let errorCode: String?

    var description: String { "\(status) \(errorCode ?? "") \(error ?? "") \(response)" }
}

struct MappingSnapshot: Sendable, Equatable {
    let id: Int64
    let vmId: String
    let diskUnitNumber: Int
    let volumeId: String
    let devicePath: String
    let nbdPort: Int
    let jobId: String?
    let vmName: String?
    let status: String
    let createdAt: String
    let updatedAt: String
}

/// A response object, read with typed accessors.
struct JSONObject: Sendable, CustomStringConvertible {
    let text: String

    init(_ text: String = "{}") { self.text = text }

    private var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    subscript(string key: String) -> String? { object[key] as? String }
    subscript(int key: String) -> Int? { object[key] as? Int }
    subscript(bool key: String) -> Bool? { object[key] as? Bool }
    var keys: [String] { object.keys.sorted() }
    var description: String { text }
}

/// The inode of a directory entry itself (not its target): changes when the entry is replaced.
func entryInode(_ path: String) -> UInt64? {
    var info = stat()
    return lstat(path, &info) == 0 ? UInt64(info.st_ino) : nil
}

/// Every byte of `path`.
func fileBytes(_ path: String) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path))
}
