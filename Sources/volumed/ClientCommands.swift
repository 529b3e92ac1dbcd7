import ArgumentParser
import Foundation
import Operations
import Logging
import PostgresNIO
import Schema
import VolumeClient

/// Runs `body` with a VolumeClient on the configured database.
func withVolumeClient<T: Sendable>(_ database: DatabaseOptions, _ body: @Sendable (VolumeClient) async throws -> T) async throws -> T {
    let logger = quietLogger("volumed.client")
    let url = try database.url()
    return try await PostgresClient.withRunning(url, maximumConnections: 4, logger: logger) { client in
        let volumes = VolumeClient(client: client, database: url, logger: logger)
        defer { volumes.close() }
        return try await body(volumes)
    }
}

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue an operation; with --wait, wait for it and exit non-zero unless it completed.",
        discussion: """
            Examples:
              volumed enqueue create --request '{"name":"disk1","size":10737418240,"disk_offering_id":"…","zone_id":"…"}' --wait
              volumed enqueue attach --volume-id 3f9c… --vm-id 9a1b… --wait
              volumed enqueue resize --volume-id 3f9c… --size 21474836480 --wait
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: ArgumentHelp(OperationRegistry.types.map(\.rawValue).joined(separator: " | "))) var type: String
    @Option(help: "CloudStack volume UUID (all types but create).") var volumeId: String?
    @Option(help: "CloudStack VM UUID (attach, export).") var vmId: String?
    @Option(help: "The request as a JSON object.") var request: String = "{}"
    @Option(help: "The size in bytes (resize, create): sets the request's size.") var size: Int64?
    @Option(help: "Idempotency key: the same key returns the same operation.") var idempotencyKey: String?
    @Option(help: "Lower runs first.") var priority: Int16 = 0
    @Option(help: "Attempts before a transient failure becomes final.") var maxAttempts: Int = 5
    @Flag(help: "Wait for the operation to finish and print it; on a terminal, its current step and the time waited on one updating line (standard error).") var wait = false
    @Option(help: "Seconds to wait with --wait.") var timeout: Int = 600
    @Flag(help: "With --wait: the result as one JSON line, progress as plain lines (no terminal control).") var json = false

    func validate() throws {
        guard OperationRegistry.types.contains(OperationType(rawValue: type)) else {
            throw ValidationError("TYPE must be one of \(OperationRegistry.types.map(\.rawValue).joined(separator: ", ")) (got \(type))")
        }
        guard let data = request.data(using: .utf8),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ValidationError("--request must be a JSON object, e.g. '{\"force\": true}' (got \(request))")
        }
        if let size {
            guard size > 0 else { throw ValidationError("--size must be a positive number of bytes (got \(size))") }
            guard object["size"] == nil else { throw ValidationError("give the size once: --size or --request's size, not both") }
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func run() async throws {
        let enqueue = EnqueueRequest(type: OperationType(rawValue: type), volumeId: volumeId, vmId: vmId, request: try requestText(),
                                     idempotencyKey: idempotencyKey, priority: priority, maxAttempts: maxAttempts)
        let (wait, timeout, json) = (self.wait, self.timeout, self.json)
        let record = try await withVolumeClient(database) { volumes -> OperationRecord? in
            let id = try await volumes.enqueue(enqueue)
            guard wait else {
                print(id.uuidString.lowercased())
                return nil
            }
            return try await WaitProgress(json: json).wait(volumes, id: id, timeout: .seconds(timeout))
        }
        if let record {
            print(OperationPrinter.json(record, pretty: !json))
            if record.status != .completed { throw ExitCode(1) }
        }
    }

    /// `--request` with `--size` merged in.
    private func requestText() throws -> String {
        guard let size else { return request }
        var object = try JSONSerialization.jsonObject(with: Data(request.utf8)) as? [String: Any] ?? [:]
        object["size"] = size
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for an operation to finish; exit 0 only if it completed.",
        discussion: """
            Prints the operation as JSON on standard output. Meanwhile, on a terminal, standard error
            shows its status, current step and the time waited on one updating line; elsewhere (or
            with --json) a plain line each time the status or step changes.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "Operation id.") var id: String
    @Option(help: "Seconds to wait.") var timeout: Int = 600
    @Flag(help: "The result as one JSON line, progress as plain lines (no terminal control).") var json = false

    func run() async throws {
        guard let uuid = UUID(uuidString: id) else { throw ValidationError("ID must be an operation UUID (got \(id))") }
        let (timeout, json) = (self.timeout, self.json)
        let record = try await withVolumeClient(database) {
            try await WaitProgress(json: json).wait($0, id: uuid, timeout: .seconds(timeout))
        }
        print(OperationPrinter.json(record, pretty: !json))
        if record.status != .completed { throw ExitCode(1) }
    }
}

struct OpsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ops", abstract: "List recent operations, newest first.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Only this status.") var status: String?
    @Option(help: "Only this type.") var type: String?
    @Option(help: "Only this volume.") var volumeId: String?
    @Option(help: "How many.") var limit: Int = 20
    @Flag(help: "JSON lines instead of a table.") var json = false
    @Flag(help: "Refresh a compact table (with each operation's current step) until interrupted.") var watch = false
    @Option(help: "Seconds between refreshes with --watch.") var interval: Double = 1

    func validate() throws {
        if let status, OperationStatus(rawValue: status) == nil {
            throw ValidationError("--status must be one of \(OperationStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let type, !OperationRegistry.types.contains(OperationType(rawValue: type)) {
            throw ValidationError("--type must be one of \(OperationRegistry.types.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
        guard interval >= 0.2, interval <= 3600 else { throw ValidationError("--interval must be between 0.2 and 3600 seconds (got \(interval))") }
        if watch && json { throw ValidationError("--watch shows a table; leave out --json (or poll with --json yourself)") }
    }

    func run() async throws {
        let filter = VolumeClient.Filter(type: type, status: status, volumeId: volumeId, limit: limit)
        if watch {
            let interval = self.interval
            try await withVolumeClient(database) { volumes in
                try await OpsWatch(interval: .milliseconds(Int(interval * 1000))).run(volumes, filter: filter)
            }
            return
        }
        let records = try await withVolumeClient(database) { try await $0.operations(filter) }
        if json {
            for record in records { print(OperationPrinter.json(record, pretty: false)) }
        } else {
            print(OperationPrinter.table(records))
        }
    }
}

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "device", abstract: "Show where a volume is attached and its device.")

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "CloudStack volume UUID.") var volumeId: String

    func run() async throws {
        let volumeId = self.volumeId
        let line = try await withVolumeClient(database) { volumes -> String? in
            try await volumes.client.decodedRows(DeviceMappingsTable.json(volumeId: volumeId), logger: quietLogger("volumed.client")) {
                try $0.decode(String.self)
            }.first
        }
        guard let line else {
            FileHandle.standardError.write(Data("no device mapping for volume \(volumeId): it is not attached through volumed\n".utf8))
            throw ExitCode(1)
        }
        print(line)
    }
}

/// Errors only: the CLI's output is its result, and PostgresNIO warns (harmlessly) when the
/// first query races the pool's start.
func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .error
    return logger
}
