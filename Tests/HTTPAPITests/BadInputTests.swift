import DevServices
import Foundation
import NIOHTTP1
import PostgresNIO
import TestSupport
import Testing

/// Malformed input through every door — SQL, the command line, configuration, HTTP — while a
/// real worker (the `volumed serve` services) runs. Each gets a clear error naming what is
/// wrong (and, where there is one, the fix); none leaves a row it should not; the worker
/// survives them all and still completes good work afterwards.
@Suite struct BadInputTests {
    /// One malformed input: what it is, how it is sent, and words its error must contain.
    struct Case: Sendable {
        enum Door: String, Sendable { case sql, cli, configuration, http }
        let door: Door
        let name: String
        let expected: [String]
        /// The input is a good operation the worker then refuses: it leaves its (failed) row.
        var leavesARow = false
        /// Sends the input; returns the error text it got back.
        let send: @Sendable (APIWorld) async throws -> String
    }

    static let volume = "3f9c2a10-8b1e-4c6d-9f00-1a2b3c4d5e6f"
    static let vm = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"

    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    /// The database's refusal of `sql`, as a client sees it (message and hint).
    static func sqlError(_ sql: String) -> @Sendable (APIWorld) async throws -> String {
        { world in
            do {
                try await world.db.query(sql)
                return "accepted"
            } catch let error as PSQLError {
                return [error.serverInfo?[.message], error.serverInfo?[.hint], error.serverInfo?[.detail]]
                    .compactMap { $0 }.joined(separator: " | ")
            }
        }
    }

    /// A `volumed` command's output; it must fail.
    static func command(_ arguments: [String], environment: [String: String] = [:], database: Bool = true)
        -> @Sendable (APIWorld) async throws -> String {
        { world in
            // A command that accepted its input might run for ever (a worker): 20 s at most.
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("bad-input-\(UUID().uuidString.prefix(8)).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            let child = try ChildProcess(executable: URL(fileURLWithPath: volumed),
                                         arguments: arguments + (database ? ["--database-url", world.db.urlText] : []),
                                         outputPath: log, environment: environment)
            let deadline = ContinuousClock.now + .seconds(20)
            while !child.hasExited && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let stillRunning = !child.hasExited
            if stillRunning { child.send(SIGKILL) }
            let status = await child.waitForExit()
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return stillRunning || status == 0 ? "accepted: \(output)" : output
        }
    }

    /// An HTTP request's `{error, code, details}` answer; it must be a 4xx.
    static func http(_ method: HTTPMethodName, _ path: String, _ body: String? = nil) -> @Sendable (APIWorld) async throws -> String {
        { world in
            let answer = try await world.send(method.nio, path, json: body)
            guard (400..<500).contains(answer.status) else { return "answered \(answer.status): \(answer.text)" }
            let (message, code, _) = try answer.apiError()
            return "\(answer.status) \(code): \(message)"
        }
    }

    enum HTTPMethodName: Sendable {
        case get, post
        var nio: HTTPMethod { self == .get ? .GET : .POST }
    }

    static let cases: [Case] = [
        // SQL, as any orchestrator sends it
        Case(door: .sql, name: "unknown type", expected: ["volume_operations_type_known"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id) VALUES ('defragment', '\(volume)')")),
        Case(door: .sql, name: "detach without volume_id", expected: ["volume_operations_volume_id_required"],
             send: sqlError("INSERT INTO volume_operations (type) VALUES ('detach')")),
        Case(door: .sql, name: "volume_id not a UUID", expected: ["volume_operations_volume_id_is_uuid"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', 'vol-1')")),
        Case(door: .sql, name: "attach without vm_id", expected: ["volume_operations_vm_id_required"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id) VALUES ('attach', '\(volume)')")),
        Case(door: .sql, name: "request is an array", expected: ["volume_operations_request_is_object"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, request) VALUES ('detach', '\(volume)', '[1, 2]')")),
        Case(door: .sql, name: "request over 64 KiB", expected: ["volume_operations_request_size"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, request) VALUES ('detach', '\(volume)', jsonb_build_object('pad', repeat('x', 70000)))")),
        Case(door: .sql, name: "unknown status", expected: ["must have status pending (got done)"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, status) VALUES ('detach', '\(volume)', 'done')")),
        Case(door: .sql, name: "inserted already completed", expected: ["must have status pending", "leave status"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, status, completed_at) VALUES ('detach', '\(volume)', 'completed', now())")),
        Case(door: .sql, name: "max_attempts 0", expected: ["volume_operations_attempts_valid"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, max_attempts) VALUES ('detach', '\(volume)', 0)")),
        Case(door: .sql, name: "injection in volume_id", expected: ["volume_operations_volume_id_is_uuid"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', $$x'); DROP TABLE volume_operations; --$$)")),
        Case(door: .sql, name: "idempotency key reused for another operation", expected: ["different parameters", "new idempotency key"],
             send: { world in
                 _ = try await world.db.query("SELECT volume_operation_enqueue('detach', '\(volume)', NULL, '{}', 'bad-input-key')")
                 return try await sqlError("SELECT volume_operation_enqueue('delete', '\(volume)', NULL, '{}', 'bad-input-key')")(world)
             }),
        Case(door: .sql, name: "a terminal row changed again", expected: ["already cancelled", "enqueue a new operation"],
             send: { world in
                 // Not claimable for an hour, so the worker cannot take it before the cancel.
                 let id = try await world.db.scalar("""
                     INSERT INTO volume_operations (type, volume_id, run_after)
                     VALUES ('delete', '\(vm)', now() + interval '1 hour') RETURNING id::text
                     """) ?? ""
                 _ = try await world.db.query("SELECT volume_operation_cancel('\(id)')")
                 return try await sqlError("UPDATE volume_operations SET status = 'pending' WHERE id = '\(id)'")(world)
             }),
        Case(door: .sql, name: "seq written with OVERRIDING SYSTEM VALUE", expected: ["cannot set seq", "an INSERT sets only type"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, seq) OVERRIDING SYSTEM VALUE VALUES ('detach', '\(volume)', 1)")),
        Case(door: .sql, name: "bookkeeping columns in an INSERT", expected: ["cannot set checkpoint, response", "leave the other columns out"],
             send: sqlError("INSERT INTO volume_operations (type, volume_id, checkpoint, response) VALUES ('detach', '\(volume)', '{}', '{}')")),
        Case(door: .sql, name: "request nested 40 levels deep", expected: ["request.metadata", "more than 32 levels deep"],
             send: sqlError("INSERT INTO volume_operations (type, request) VALUES ('create', '{\"metadata\": \(String(repeating: "[", count: 40))\(String(repeating: "]", count: 40))}')")),
        Case(door: .sql, name: "request nested 510 levels deep through the enqueue function", expected: ["request.metadata", "more than 32 levels deep"],
             send: sqlError("SELECT volume_operation_enqueue('create', NULL, NULL, '{\"metadata\": \(String(repeating: "{\"a\": ", count: 510))1\(String(repeating: "}", count: 510))}')")),
        Case(door: .sql, name: "an executing row finished without its claim token", expected: ["only that worker, with its claim token", "cancel it"],
             send: { world in
                 let id = try await world.db.scalar("""
                     INSERT INTO volume_operations (type, volume_id, run_after)
                     VALUES ('detach', gen_random_uuid()::text, now() + interval '1 hour') RETURNING id::text
                     """) ?? ""
                 _ = try await world.db.query("UPDATE volume_operations SET \(sqlClaim(worker: "someone-else", lease: "1 hour")) WHERE id = '\(id)'")
                 return try await sqlError("UPDATE volume_operations SET status = 'completed', response = '{}' WHERE id = '\(id)'")(world)
             }),
        Case(door: .sql, name: "a terminal row's response rewritten", expected: ["already cancelled and never changes again", "response"],
             send: { world in
                 let id = try await world.db.scalar("""
                     INSERT INTO volume_operations (type, volume_id, run_after)
                     VALUES ('detach', gen_random_uuid()::text, now() + interval '1 hour') RETURNING id::text
                     """) ?? ""
                 _ = try await world.db.query("SELECT volume_operation_cancel('\(id)')")
                 return try await sqlError("UPDATE volume_operations SET response = '{\"forged\": true}' WHERE id = '\(id)'")(world)
             }),

        // The command line
        Case(door: .cli, name: "enqueue of an unknown type", expected: ["defragment"],
             send: command(["enqueue", "defragment", "--volume-id", volume])),
        Case(door: .cli, name: "enqueue with a non-UUID volume id", expected: ["volume", "UUID"],
             send: command(["enqueue", "detach", "--volume-id", "vol-1"])),
        Case(door: .cli, name: "enqueue with unparsable request JSON", expected: ["--request", "JSON"],
             send: command(["enqueue", "detach", "--volume-id", volume, "--request", "{bad json"])),
        Case(door: .cli, name: "wait for a non-UUID id", expected: ["not-an-id"],
             send: command(["wait", "not-an-id", "--timeout", "1"])),
        Case(door: .cli, name: "prune with a bad duration", expected: ["--older-than", "30d"],
             send: command(["prune", "--older-than", "5x"])),
        Case(door: .cli, name: "ops with an unknown status", expected: ["--status must be one of"],
             send: command(["ops", "--status", "done"])),

        // Configuration (environment variables, as systemd's EnvironmentFile gives them)
        Case(door: .configuration, name: "DATABASE_URL of another database", expected: ["postgres"],
             send: command(["migrate"], environment: ["DATABASE_URL": "mysql://root@localhost/volumed"], database: false)),
        Case(door: .configuration, name: "appliance id not a UUID", expected: ["VOLUMED_APPLIANCE_VM_ID", "UUID"],
             send: command(["worker"], environment: ["VOLUMED_APPLIANCE_VM_ID": "appliance-1"])),
        Case(door: .configuration, name: "concurrency not a number", expected: ["VOLUMED_CONCURRENCY", "whole number"],
             send: command(["worker"], environment: ["VOLUMED_CONCURRENCY": "lots"])),
        Case(door: .configuration, name: "CloudStack endpoint missing", expected: ["CLOUDSTACK_API_URL", "not set"],
             send: command(["worker"], environment: ["CLOUDSTACK_API_URL": "", "CLOUDSTACK_API_KEY": "k", "CLOUDSTACK_SECRET_KEY": "s"])),
        Case(door: .configuration, name: "unknown NBD backend", expected: ["VOLUMED_NBD_BACKEND", "nbdkit"],
             send: command(["worker"], environment: ["CLOUDSTACK_API_URL": "http://127.0.0.1:1/client/api", "CLOUDSTACK_API_KEY": "k",
                                                     "CLOUDSTACK_SECRET_KEY": "s", "VOLUMED_NBD_BACKEND": "qemu-nbd"])),
        Case(door: .configuration, name: "HTTP address without a port", expected: ["VOLUMED_HTTP_ADDR", "host:port"],
             send: command(["serve"], environment: ["VOLUMED_HTTP_ADDR": "localhost"])),
        Case(door: .configuration, name: "negative reconcile interval", expected: ["VOLUMED_RECONCILE_INTERVAL"],
             send: command(["worker"], environment: ["VOLUMED_RECONCILE_INTERVAL": "-5"])),

        // HTTP bodies and paths
        Case(door: .http, name: "create with a negative size", expected: ["400 INVALID_REQUEST", "size"],
             send: http(.post, "/api/v1/volumes", #"{"name":"d","size":-1,"disk_offering_id":"\#(vm)","zone_id":"\#(vm)"}"#)),
        Case(door: .http, name: "create without a name", expected: ["400 INVALID_REQUEST", "name"],
             send: http(.post, "/api/v1/volumes", #"{"size":1073741824,"disk_offering_id":"\#(vm)","zone_id":"\#(vm)"}"#)),
        Case(door: .http, name: "create with metadata as a string", expected: ["400 INVALID_REQUEST", "metadata"],
             send: http(.post, "/api/v1/volumes", #"{"name":"d","size":1073741824,"disk_offering_id":"\#(vm)","zone_id":"\#(vm)","metadata":"x"}"#)),
        Case(door: .http, name: "attach with vm_id a number", expected: ["400 INVALID_REQUEST", "vm_id"],
             send: http(.post, "/api/v1/volumes/\(volume)/attach", #"{"vm_id":42}"#)),
        Case(door: .http, name: "injection in the volume id of the path", expected: ["400 INVALID_REQUEST", "UUID"],
             send: http(.post, "/api/v1/volumes/1%27%3BDROP%20TABLE%20volumes%3B--/attach", #"{"vm_id":"\#(vm)"}"#)),
        Case(door: .http, name: "export with disk_number a string", expected: ["400 INVALID_REQUEST", "disk_number"],
             send: http(.post, "/api/v1/exports", #"{"volume_id":"\#(volume)","vm_id":"\#(vm)","vm_name":"src","disk_number":"one"}"#)),
        Case(door: .http, name: "body over 64 KiB", expected: ["413 INVALID_REQUEST"],
             send: http(.post, "/api/v1/volumes", #"{"name":"\#(String(repeating: "x", count: 70_000))"}"#)),
        Case(door: .http, name: "body that is not JSON", expected: ["400 INVALID_REQUEST"],
             send: http(.post, "/api/v1/volumes/\(volume)/attach", "vm_id=\(vm)")),
        Case(door: .http, name: "operations filtered by an unknown status", expected: ["400 INVALID_REQUEST", "status"],
             send: http(.get, "/api/v1/operations?status=done")),

        // Issue 12: nesting, NUL bytes, foreign export names, a database that is not there
        Case(door: .http, name: "metadata nested 510 levels deep", expected: ["400 INVALID_REQUEST", "field 'metadata'", "at most 31 levels"],
             send: http(.post, "/api/v1/volumes", #"{"name":"d","size":1073741824,"disk_offering_id":"\#(vm)","zone_id":"\#(vm)","metadata":\#(String(repeating: #"{"a":"#, count: 510) + "1" + String(repeating: "}", count: 510))}"#)),
        Case(door: .http, name: "a body nested 50 000 arrays deep", expected: ["400 INVALID_REQUEST", "field 'vm_id'", "levels deep"],
             send: http(.post, "/api/v1/volumes/\(volume)/attach", #"{"vm_id":"# + String(repeating: "[", count: 50_000) + "}")),
        Case(door: .http, name: "NUL byte in the device path", expected: ["400 INVALID_REQUEST", "NUL"],
             send: http(.get, "/api/v1/devices/%2Fdev%2Fvd%00b/volume")),
        Case(door: .http, name: "NUL byte in a query parameter", expected: ["400 INVALID_REQUEST", "vm_name", "NUL"],
             send: http(.get, "/api/v1/exports?vm_name=src%00vm")),
        Case(door: .http, name: "NUL byte in the operation id of the path", expected: ["400 INVALID_REQUEST", "NUL"],
             send: http(.get, "/api/v1/operations/%00")),
        Case(door: .sql, name: "unexport naming an entry volumed does not own", expected: ["export_name", "migration-vol-\(volume)"],
             leavesARow: true,
             send: { world in
                 let id = try await world.db.scalar(
                     #"SELECT volume_operation_enqueue('unexport', '\#(volume)', NULL, '{"export_name": "keepme"}')::text"#) ?? ""
                 _ = try await world.finished(id)
                 return try await world.db.scalar("SELECT coalesce(error, 'accepted') FROM volume_operations WHERE id = '\(id)'") ?? ""
             }),
        Case(door: .configuration, name: "DATABASE_URL of a port nothing listens on",
             expected: ["cannot connect to PostgreSQL at 127.0.0.1:1: connection refused"],
             send: command(["ops"], environment: ["DATABASE_URL": "postgres://nobody@127.0.0.1:1/x"], database: false)),
        Case(door: .configuration, name: "DATABASE_URL of a database that does not exist", expected: ["database", "does not exist"],
             send: { world in
                 try await command(["ops"], environment: ["DATABASE_URL": otherDatabase(world.db.urlText, "no_such_db")], database: false)(world)
             }),
        Case(door: .configuration, name: "DATABASE_URL of a role that does not exist", expected: ["refused the login", "nobody"],
             send: { world in
                 try await command(["ops"], environment: ["DATABASE_URL": world.db.urlText.replacingOccurrences(of: "://postgres@", with: "://nobody@")],
                                   database: false)(world)
             }),
        Case(door: .configuration, name: "VOLUMED_ALLOW_FILE_DEVICES not a flag", expected: ["VOLUMED_ALLOW_FILE_DEVICES", "1 or 0"],
             send: command(["worker"], environment: ["CLOUDSTACK_API_URL": "http://127.0.0.1:1/client/api", "CLOUDSTACK_API_KEY": "k",
                                                     "CLOUDSTACK_SECRET_KEY": "s", "VOLUMED_ALLOW_FILE_DEVICES": "maybe"])),
    ]

    /// `url` naming `database` instead of its own.
    static func otherDatabase(_ url: String, _ database: String) -> String {
        guard let slash = url.range(of: "@/") else { return url }
        let rest = url[slash.upperBound...]
        let end = rest.firstIndex(of: "?") ?? rest.endIndex
        return url.replacingCharacters(in: slash.upperBound..<end, with: database)
    }

    @Test func everyMalformedInputGetsAClearErrorAndLosesNothing() async throws {
        #expect(Self.cases.count >= 25)
        try await APIWorld.with(.serve) { world in
            try await eventually("the worker running") {
                (try await world.get("/api/v1/health").object()["details"] as? [String: Any])?["worker"] as? String == "running"
            }
            for input in Self.cases {
                let before = try await world.operationCount()
                let error = try await input.send(world)
                if ProcessInfo.processInfo.environment["BAD_INPUT_PRINT"] != nil { print("[\(input.door)] \(input.name): \(error)") }
                #expect(!error.hasPrefix("accepted") && !error.hasPrefix("answered"),
                        "\(input.door) \(input.name) was not refused: \(error)")
                for word in input.expected {
                    #expect(error.contains(word), "\(input.door) \(input.name): \"\(word)\" missing from: \(error)")
                }
                // Only the cases that enqueue a good operation on purpose add a row.
                let added = try await world.operationCount() - before
                #expect(added == (input.leavesARow || input.name.contains("idempotency") || input.name.contains("terminal") || input.name.contains("claim token") ? 1 : 0),
                        "\(input.door) \(input.name) left \(added) rows")
            }
            #expect(try await world.db.count("SELECT count(*)::text FROM pg_tables WHERE tablename IN ('volume_operations', 'volumes')") == 2)

            // A row the database accepts but the handler cannot use fails, naming the field.
            let badShape = try await world.db.scalar("""
                SELECT volume_operation_enqueue('create', NULL, NULL, '{"name": "d", "size": "big", "zone_id": "z", "disk_offering_id": "o"}')::text
                """) ?? ""
            #expect(try await world.finished(badShape) == "failed")
            #expect(try await world.db.scalar("SELECT error_code FROM volume_operations WHERE id = '\(badShape)'") == "invalid_request")
            let message = try await world.db.scalar("SELECT error FROM volume_operations WHERE id = '\(badShape)'") ?? ""
            #expect(message.contains("size"), "\(message)")

            // An attach to a VM CloudStack does not know fails clearly, and maps nothing.
            let volume = try await world.cloudVolume()
            let unknownVM = try await world.db.scalar(
                "SELECT volume_operation_enqueue('attach', '\(volume)', '\(UUID().uuidString.lowercased())')::text") ?? ""
            #expect(try await world.finished(unknownVM) == "failed")
            let unknownMessage = try await world.db.scalar("SELECT error FROM volume_operations WHERE id = '\(unknownVM)'") ?? ""
            #expect(unknownMessage.lowercased().contains("vm") || unknownMessage.lowercased().contains("virtual machine"), "\(unknownMessage)")
            #expect(try await world.db.count("SELECT count(*)::text FROM device_mappings") == 0)

            // The worker survived all of it and still does good work.
            let good = try await world.db.scalar("SELECT volume_operation_enqueue('attach', '\(volume)', '\(world.appliance)')::text") ?? ""
            #expect(try await world.finished(good) == "completed")
        }
    }
}
