import DevServices
import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing
import Worker

/// `volumed prune` and the table-health settings (LESSONS "Table health").
@Suite("retention")
struct RetentionTests {
    @Test("old terminal operations and their events are deleted; recent, pending and executing ones are kept")
    func prunesOldTerminalOperationsOnly() async throws {
        try await withDatabase { db in
            let oldCompleted = try await operation(db, finishing: "completed", daysAgo: 40)
            let oldFailed = try await operation(db, finishing: "failed", daysAgo: 31)
            let oldCancelled = try await operation(db, finishing: "cancelled", daysAgo: 90)
            let recent = try await operation(db, finishing: "completed", daysAgo: 29)
            let oldPending = try await operation(db, finishing: nil, daysAgo: 100)
            let oldExecuting = try await operation(db, finishing: "executing", daysAgo: 100)
            let kept = [recent, oldPending, oldExecuting]
            let keptEvents = try await events(db, of: kept)
            let prunedEvents = try await events(db, of: [oldCompleted, oldFailed, oldCancelled])
            #expect(prunedEvents == 3 + 3 + 2) // insert, executing, completed/failed; insert, cancelled

            let report = try await OperationPruner(client: db.client, logger: testLogger)
                .prune(olderThan: try RetentionPeriod(parsing: "30d"))

            #expect(report.operations == 3)
            #expect(report.events == Int64(prunedEvents))
            #expect(report.batches == 1)
            #expect(try await ids(db) == Set(kept))
            #expect(try await events(db, of: kept) == keptEvents)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operation_events") == keptEvents)
        }
    }

    @Test("deletes in batches of the given size, one transaction each")
    func prunesInBatches() async throws {
        try await withDatabase { db in
            for _ in 0..<5 { _ = try await operation(db, finishing: "completed", daysAgo: 2) }
            let recent = try await operation(db, finishing: "completed", daysAgo: 0)

            let report = try await OperationPruner(client: db.client, logger: testLogger)
                .prune(olderThan: try RetentionPeriod(parsing: "12h"), batchSize: 2)

            #expect(report.operations == 5)
            #expect(report.events == 15)
            #expect(report.batches == 3)
            #expect(try await ids(db) == [recent])
        }
    }

    @Test("a dry run counts and deletes nothing")
    func aDryRunDeletesNothing() async throws {
        try await withDatabase { db in
            _ = try await operation(db, finishing: "completed", daysAgo: 10)
            _ = try await operation(db, finishing: "cancelled", daysAgo: 10)
            _ = try await operation(db, finishing: "completed", daysAgo: 1)
            let before = try await db.query("SELECT t::text FROM volume_operation_events t ORDER BY id")

            let report = try await OperationPruner(client: db.client, logger: testLogger)
                .prune(olderThan: try RetentionPeriod(parsing: "1w"), dryRun: true)

            #expect(report.dryRun && report.operations == 2 && report.events == 5 && report.batches == 0)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 3)
            #expect(try await db.query("SELECT t::text FROM volume_operation_events t ORDER BY id") == before)
        }
    }

    @Test("durations: a number and s, m, h, d or w; anything else is refused saying what is wrong")
    func parsesRetentionPeriods() throws {
        let valid: [String: Int64] = ["30d": 2_592_000, "12h": 43_200, "90m": 5400, "45s": 45, "2w": 1_209_600, " 7D ": 604_800]
        for (text, seconds) in valid {
            #expect(try RetentionPeriod(parsing: text).seconds == seconds, "\(text)")
        }
        let invalid: [String: String] = [
            "": "does not end in a unit", "30": "does not end in a unit", "30x": "does not end in a unit",
            "d": "not a whole number", "-5d": "not a whole number", "1.5h": "not a whole number", "٣d": "not a whole number",
            "0d": "zero", "36501d": "longer than 36500 days", "99999999999999999w": "longer than 36500 days",
        ]
        for (text, reason) in invalid {
            let error = #expect(throws: RetentionPeriodError.self, "\(text)") { try RetentionPeriod(parsing: text) }
            #expect(error?.description.contains(reason) == true, "\(text): \(error?.description ?? "")")
            #expect(error?.description.hasPrefix("--older-than must be a whole number followed by s, m, h, d or w, such as 30d or 12h") == true)
        }
    }

    @Test("volumed prune: a bad --older-than is refused with the rule; a good one prunes and says how much")
    func theCommandLine() async throws {
        try await withDatabase { db in
            _ = try await operation(db, finishing: "failed", daysAgo: 3)
            let bad = try await volumed(["prune", "--older-than", "30 days"], database: db.urlText)
            #expect(bad.status == 64, "\(bad.output)")
            #expect(bad.output.contains("--older-than must be a whole number followed by s, m, h, d or w, such as 30d or 12h; \"30 days\""),
                    "\(bad.output)")
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 1)

            let dry = try await volumed(["prune", "--older-than", "2d", "--dry-run"], database: db.urlText)
            #expect(dry.status == 0 && dry.output.contains("would delete 1 operations and 3 events"), "\(dry.output)")
            let run = try await volumed(["prune", "--older-than", "2d"], database: db.urlText)
            #expect(run.status == 0 && run.output.contains("deleted 1 operations and 3 events"), "\(run.output)")
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 0)
        }
    }

    @Test("0003: autovacuum settings for the queue tables are in place")
    func tableHealthSettings() async throws {
        try await withDatabase { db in
            let operations = try await reloptions(db, "volume_operations")
            #expect(Set(operations).isSuperset(of: [
                "fillfactor=70", "autovacuum_vacuum_scale_factor=0.01", "autovacuum_analyze_scale_factor=0.02",
            ]), "\(operations)")
            let events = try await reloptions(db, "volume_operation_events")
            #expect(events == [
                "autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_insert_scale_factor=0.05",
                "autovacuum_analyze_scale_factor=0.02", "autovacuum_vacuum_cost_delay=1",
            ], "\(events)")
        }
    }

    // MARK: - Helpers

    /// An operation on a volume of its own, taken to `finishing` (nil: left pending) through the
    /// transitions the database allows, its times moved `daysAgo` into the past.
    private func operation(_ db: TestDatabase, finishing: String?, daysAgo: Int) async throws -> UUID {
        let id = try await insertOperation(db, volume: randomVolumeId())
        if let finishing, finishing != "cancelled" {
            try await db.query("UPDATE volume_operations SET \(sqlClaim(lease: "1 hour")) WHERE id = '\(id)'")
        }
        switch finishing {
        case "completed":
            try await db.query("UPDATE volume_operations SET status = 'completed', \(sqlProof()) WHERE id = '\(id)'")
        case "cancelled":
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(id)'")
        case "failed":
            try await db.query("UPDATE volume_operations SET status = 'failed', error = 'e', error_code = 'e', \(sqlProof()) WHERE id = '\(id)'")
        default:
            break
        }
        // Terminal rows never change: history is moved into the past with the rules off.
        try await withTriggersOff(db, """
            UPDATE volume_operations
               SET created_at = created_at - interval '\(daysAgo) days',
                   completed_at = completed_at - interval '\(daysAgo) days'
             WHERE id = '\(id)'
            """)
        try await db.query("UPDATE volume_operation_events SET at = at - interval '\(daysAgo) days' WHERE operation_id = '\(id)'")
        return id
    }

    private func ids(_ db: TestDatabase) async throws -> Set<UUID> {
        Set(try await db.query("SELECT id::text FROM volume_operations").compactMap { $0.flatMap(UUID.init(uuidString:)) })
    }

    private func events(_ db: TestDatabase, of ids: [UUID]) async throws -> Int {
        let list = ids.map { "'\($0)'" }.joined(separator: ",")
        return try await db.count("SELECT count(*)::text FROM volume_operation_events WHERE operation_id IN (\(list))")
    }

    private func reloptions(_ db: TestDatabase, _ table: String) async throws -> [String] {
        try await db.query("SELECT unnest(reloptions) FROM pg_class WHERE relname = '\(table)' AND relkind = 'r'").compactMap { $0 }
    }

    /// Runs the built `volumed` executable with `DATABASE_URL` set; returns its status and output.
    private func volumed(_ arguments: [String], database: String) async throws -> (status: Int32, output: String) {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-prune-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try ChildProcess(executable: executable, arguments: arguments, outputPath: log, environment: ["DATABASE_URL": database])
        let status = await child.waitForExit()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}
