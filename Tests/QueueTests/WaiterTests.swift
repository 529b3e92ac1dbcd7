import DevServices
import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing
import VolumeClient
import Worker

@Suite struct WaiterTests {
    @Test func aWaiterThatStartsAfterCompletionReturnsAtOnce() async throws {
        try await withDatabase { db in
            let id = try await insertOperation(db)
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(id)'")
            let client = VolumeClient(client: db.client, database: db.url, logger: testLogger)
            defer { client.close() }
            let started = ContinuousClock.now
            let record = try await client.waitForCompletion(id, timeout: .seconds(30), pollInterval: .seconds(30))
            #expect(record.status == .cancelled)
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test func aWaiterIsWokenByTheCompletionNotificationNotThePoll() async throws {
        try await withDatabase { db in
            let client = VolumeClient(client: db.client, database: db.url, logger: testLogger)
            defer { client.close() }
            let ids = try await (0..<10).asyncMap { _ in
                try await client.enqueue(EnqueueRequest(type: "detach", volumeId: randomVolumeId()))
            }
            // A 60 s poll: only the notification can finish these waits in time.
            let waits = Task {
                try await withThrowingTaskGroup(of: OperationRecord.self) { group in
                    for id in ids { group.addTask { try await client.waitForCompletion(id, timeout: .seconds(50), pollInterval: .seconds(60)) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let started = ContinuousClock.now
            let worker = startWorker(db, handlers: ["detach": ClosureHandler { _, _ in try .completed(["ok": true]) }])
            let records = try await waits.value
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(records.allSatisfy { $0.status == .completed })
            try await worker.stop()
        }
    }

    @Test func waitTimesOutWithAClearErrorAndUnknownIdsAreNotFound() async throws {
        try await withDatabase { db in
            let client = VolumeClient(client: db.client, database: db.url, logger: testLogger)
            defer { client.close() }
            let id = try await insertOperation(db)
            await #expect { try await client.waitForCompletion(id, timeout: .milliseconds(300)) } throws: {
                ($0 as? VolumeClientError)?.kind == .timeout && "\($0)".contains("still pending")
            }
            await #expect { try await client.waitForCompletion(UUID(), timeout: .seconds(1)) } throws: {
                ($0 as? VolumeClientError)?.kind == .notFound
            }
        }
    }

    @Test func enqueueRejectsBadRowsNamingTheFieldAndDeduplicatesKeys() async throws {
        try await withDatabase { db in
            let client = VolumeClient(client: db.client, database: db.url, logger: testLogger)
            defer { client.close() }
            await #expect { try await client.enqueue(EnqueueRequest(type: "attach", volumeId: "not-a-uuid", vmId: applianceVM)) } throws: {
                "\($0)".contains("volume_id must be a CloudStack volume UUID")
            }
            await #expect { try await client.enqueue(EnqueueRequest(type: "export", volumeId: volumeA)) } throws: {
                "\($0)".contains("vm_id is required")
            }
            await #expect { try await client.enqueue(EnqueueRequest(type: "detach", volumeId: volumeA, request: "[]")) } throws: {
                "\($0)".contains("request must be a JSON object")
            }
            let first = try await client.enqueue(EnqueueRequest(type: "detach", volumeId: volumeA, idempotencyKey: "k"))
            let again = try await client.enqueue(EnqueueRequest(type: "detach", volumeId: volumeA, idempotencyKey: "k"))
            #expect(first == again)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 1)
        }
    }
}

@Suite struct CommandLineTests {
    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    @Test func migrateEnqueueWaitAndOpsFromTheCommandLine() async throws {
        let url = try await TestCluster.shared.emptyDatabase()
        let first = try await ProcessRunner.run([Self.volumed, "migrate", "--database-url", url])
        #expect(first.output.contains("applied 0001_queue.sql"))
        let second = try await ProcessRunner.run([Self.volumed, "migrate", "--database-url", url])
        #expect(second.output.contains("schema is up to date"))

        let bad = try await ProcessRunner.run([Self.volumed, "enqueue", "detach", "--volume-id", "vol-1", "--database-url", url], check: false)
        #expect(bad.status != 0)
        #expect(bad.output.contains("volume_id must be a CloudStack volume UUID"))
        let badJSON = try await ProcessRunner.run([Self.volumed, "enqueue", "detach", "--volume-id", volumeA, "--request", "{oops", "--database-url", url], check: false)
        #expect(badJSON.status != 0 && badJSON.output.contains("--request must be a JSON object"))

        try await PostgresClientHarness.withWorker(url: url) {
            let done = try await ProcessRunner.run([Self.volumed, "enqueue", "detach", "--volume-id", volumeA, "--wait", "--timeout", "30", "--database-url", url])
            #expect(done.output.contains("\"status\" : \"completed\""))
            let id = try await ProcessRunner.run([Self.volumed, "enqueue", "detach", "--volume-id", volumeB, "--database-url", url]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let waited = try await ProcessRunner.run([Self.volumed, "wait", id, "--timeout", "30", "--database-url", url])
            #expect(waited.output.contains(id))
        }
        let ops = try await ProcessRunner.run([Self.volumed, "ops", "--status", "completed", "--database-url", url])
        #expect(ops.output.contains(volumeA) && ops.output.contains(volumeB))
        let badOps = try await ProcessRunner.run([Self.volumed, "ops", "--status", "done", "--database-url", url], check: false)
        #expect(badOps.status != 0 && badOps.output.contains("--status must be one of"))
    }
}

@Suite struct DemoTests {
    @Test func theDemoRunsTheWholeReplicationFlowAndCleansUp() async throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
        let result = try await ProcessRunner.run([CommandLineTests.volumed, "demo"])
        for step in ["create × 3", "attach × 3", "export × 3", "detach × 3", "delete × 3", "volume_operation_stats"] {
            #expect(result.output.contains(step), "\(result.output)")
        }
        // Bytes written through the by-id device came back over NBD from a real nbdkit.
        #expect(result.output.components(separatedBy: ": \"volumed demo ").count == 4, "\(result.output)")
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
        #expect(after.subtracting(before).filter { $0.hasPrefix("volumed-demo") }.isEmpty)
    }

    /// The shipped binary links neither the simulator nor the throwaway services: `volumed demo`
    /// hands over to `volumed-dev` beside it, and says where to find it when it is missing.
    @Test func theShippedBinaryLeavesTheDemoToTheDevelopmentTool() async throws {
        let binary = try Data(contentsOf: URL(fileURLWithPath: CommandLineTests.volumed))
        for module in ["CloudStackSimulator", "DevServices"] {
            // Swift symbol names carry their module as `<length><name>`.
            #expect(binary.range(of: Data("\(module.count)\(module)".utf8)) == nil, "volumed links \(module)")
        }
        let alone = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-alone-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: alone, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: alone) }
        let copy = alone.appendingPathComponent("volumed").path
        try FileManager.default.copyItem(atPath: CommandLineTests.volumed, toPath: copy)
        let result = try await ProcessRunner.run([copy, "demo"], check: false)
        #expect(result.status != 0)
        #expect(result.output.contains("the demo lives in the development tool volumed-dev"), "\(result.output)")
        #expect(result.output.contains("swift run volumed-dev demo"), "\(result.output)")
    }

    /// Ctrl-C in the middle of the flow (volumes attached: their by-id links exist) stops the
    /// demo with status 130 and removes its PostgreSQL, nbdkit and folders.
    @Test func ctrlCStopsTheDemoAndLeavesNothingBehind() async throws {
        let temporary = NSTemporaryDirectory()
        @Sendable func ours(_ prefix: String) -> Set<String> {
            Set(((try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []).filter { $0.hasPrefix(prefix) })
        }
        let before = ours("volumed-demo-").union(ours("volumed-pg-"))
        let log = temporary + "/demo-interrupt-test-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let demo = try ChildProcess(executable: URL(fileURLWithPath: CommandLineTests.volumed), arguments: ["demo"], outputPath: log)
        try await eventually(timeout: .seconds(60), "the demo's volumes attached (by-id links present)") {
            ours("volumed-demo-").subtracting(before).contains { folder in
                let links = (try? FileManager.default.contentsOfDirectory(atPath: temporary + "/" + folder + "/by-id")) ?? []
                return links.count == 3
            }
        }
        let started = ours("volumed-demo-").union(ours("volumed-pg-")).subtracting(before)
        #expect(started.count == 2, "the demo's folder and its PostgreSQL's: \(started)")
        demo.send(SIGINT)
        let status = await demo.waitForExit()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(status == 130, "\(output)")
        #expect(output.contains("stopped; PostgreSQL, simulator, nbdkit and temp files removed"), "\(output)")
        #expect(ours("volumed-demo-").union(ours("volumed-pg-")).intersection(started).isEmpty, "left behind: \(started)")
    }
}

/// A worker in this process on `url` while `body` runs.
enum PostgresClientHarness {
    static func withWorker(url: String, _ body: @Sendable () async throws -> Void) async throws {
        let parsed = try DatabaseURL(url)
        try await PostgresClient.withRunning(parsed, logger: testLogger) { client in
            let db = TestDatabase(urlText: url, url: parsed, client: client)
            let worker = startWorker(db, handlers: ["detach": ClosureHandler { operation, _ in try .completed(["vm_id": operation.volumeId ?? ""]) }])
            do {
                try await body()
            } catch {
                try await worker.stop()
                throw error
            }
            try await worker.stop()
        }
    }
}
