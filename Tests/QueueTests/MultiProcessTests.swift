import Foundation
import Schema
import TestSupport
import Testing

/// Real worker processes (volumed-bench worker) against one database.
@Suite struct MultiProcessTests {
    static let runsTable = """
        CREATE TABLE handler_runs (
            operation_id uuid NOT NULL, volume_id text, worker text NOT NULL, checkpoint_seen jsonb,
            started_at timestamptz NOT NULL, finished_at timestamptz)
        """

    @Test func everyOperationRunsExactlyOnceInOrderAcrossTwoProcesses() async throws {
        try await withDatabase { db in
            try await db.query(Self.runsTable)
            // 2,000 operations on 400 volumes, five per volume, in creation order.
            try await db.query("""
                INSERT INTO volume_operations (type, volume_id)
                SELECT (ARRAY['detach', 'delete', 'unexport', 'detach', 'delete'])[round_number],
                       (SELECT id FROM (SELECT md5(v::text)::uuid::text AS id) x)
                FROM generate_series(1, 5) AS round_number, generate_series(1, 400) AS v
                ORDER BY round_number, v
                """)
            let options = ["--concurrency", "2", "--batch", "2", "--poll-ms", "200"]
            let first = try await BenchWorkerProcess(databaseURL: db.urlText, handler: "record", name: "proc-a", arguments: options)
            let second = try await BenchWorkerProcess(databaseURL: db.urlText, handler: "record", name: "proc-b", arguments: options)
            try await eventually(timeout: .seconds(120), "2,000 completions") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed'") == 2000
            }
            #expect(await first.stop() == 0)
            #expect(await second.stop() == 0)
            // Exactly once: one run per operation, and every operation ran.
            #expect(try await db.count("SELECT count(*)::text FROM handler_runs") == 2000)
            #expect(try await db.count("SELECT count(DISTINCT operation_id)::text FROM handler_runs") == 2000)
            // Both processes did work.
            #expect(try await db.count("SELECT count(DISTINCT worker)::text FROM handler_runs") == 2)
            // Per volume: runs follow creation order and never overlap.
            let outOfOrder = try await db.count("""
                SELECT count(*)::text FROM (
                    SELECT r.started_at, r.finished_at, o.seq,
                           lag(r.finished_at) OVER w AS previous_finished, lag(o.seq) OVER w AS previous_seq
                    FROM handler_runs r JOIN volume_operations o ON o.id = r.operation_id
                    WINDOW w AS (PARTITION BY r.volume_id ORDER BY r.started_at)
                ) x
                WHERE previous_seq > seq OR previous_finished > started_at
                """)
            #expect(outOfOrder == 0)
        }
    }

    @Test func aKilledWorkersOperationIsRescuedAndResumedFromItsCheckpoint() async throws {
        try await withDatabase { db in
            try await db.query(Self.runsTable)
            let id = try await insertOperation(db, volume: randomVolumeId())
            let fastLease = ["--lease-ms", "1500", "--heartbeat-ms", "300", "--rescue-ms", "300", "--poll-ms", "200"]
            let doomed = try await BenchWorkerProcess(databaseURL: db.urlText, handler: "checkpoint-sleep", name: "doomed", arguments: fastLease)
            try await eventually("the checkpoint of the first run") {
                try await db.scalar("SELECT checkpoint->>'by' FROM volume_operations WHERE id = '\(id)'") == "doomed"
            }
            await doomed.kill9()
            let survivor = try await BenchWorkerProcess(databaseURL: db.urlText, handler: "checkpoint-sleep", name: "survivor", arguments: fastLease)
            try await eventually("completion by the survivor") { try await status(db, id) == "completed" }
            #expect(await survivor.stop() == 0)
            #expect(try await db.scalar("SELECT claimed_by || '|' || (response->>'resumed_from') FROM volume_operations WHERE id = '\(id)'") == "survivor|doomed")
            let runs = try await db.query("SELECT worker || ':' || coalesce(checkpoint_seen->>'by', '-') FROM handler_runs ORDER BY started_at")
            #expect(runs == ["doomed:-", "survivor:doomed"])
            let events = try await db.query("SELECT from_status || '>' || to_status || ':' || coalesce(detail, '') FROM volume_operation_events WHERE operation_id = '\(id)' AND from_status IS NOT NULL ORDER BY id")
            #expect(events == ["pending>executing:", "executing>pending:lease expired", "pending>executing:", "executing>completed:"])
        }
    }

    @Test func sigtermReleasesInFlightWorkWithItsCheckpoint() async throws {
        try await withDatabase { db in
            try await db.query(Self.runsTable)
            let id = try await insertOperation(db, volume: randomVolumeId())
            let worker = try await BenchWorkerProcess(databaseURL: db.urlText, handler: "checkpoint-sleep", name: "stopping",
                                                      arguments: ["--poll-ms", "200"])
            try await eventually("checkpoint") {
                try await db.scalar("SELECT checkpoint->>'by' FROM volume_operations WHERE id = '\(id)'") == "stopping"
            }
            // The default grace period (25 s) is longer than we wait; the handler sleeps 120 s,
            // so shutdown must interrupt it and release the row.
            let exit = await worker.stop()
            #expect(exit == 0, "\(worker.log)")
            #expect(try await db.scalar("SELECT status || '|' || coalesce(claimed_by, '-') || '|' || (checkpoint->>'by') FROM volume_operations WHERE id = '\(id)'") == "pending|-|stopping")
        }
    }
}
