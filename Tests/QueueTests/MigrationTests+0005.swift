import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing

/// Migration 0005 (claim tokens) on a database that 0004's workers are using.
extension MigrationTests {
    @Test func upgradingFrom0004KeepsEveryRowAndWhatOldWorkersClaimedIsFinishedOrRescued() async throws {
        let text = try await TestCluster.shared.emptyDatabase()
        let url = try DatabaseURL(text)
        try await PostgresClient.withRunning(url, maximumConnections: 6, logger: testLogger) { client in
            let db = TestDatabase(urlText: text, url: url, client: client)
            try await Migrator(migrations: Array(Migration.embedded.prefix(4)), logger: testLogger).migrate(client)
            let volumes = (0..<5).map { _ in randomVolumeId() }
            var ids: [String] = []
            for (index, volume) in volumes.enumerated() {
                // One id in upper case, as 0004 stored whatever case it was sent.
                let sent = index == 4 ? volume.uppercased() : volume
                ids.append(try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(sent)') RETURNING id::text")!)
            }
            // Under 0004: two claimed by an old worker (one of which then dies), one cancelled,
            // one completed, one pending.
            #expect(try await db.query("SELECT id::text FROM volume_operations_claim('old-worker', NULL, 3, 60000)").count == 3)
            try await db.query("""
                UPDATE volume_operations SET status = 'completed', response = '{}', lease_expires_at = NULL, completed_at = now()
                WHERE id = '\(ids[2])' AND claimed_by = 'old-worker'
                """)
            #expect(try await db.scalar("SELECT volume_operation_cancel('\(ids[3])')") == "cancelled")
            try await db.query("UPDATE volume_operations SET lease_expires_at = now() - interval '1 second' WHERE id = '\(ids[1])'")
            let before = try await db.query("SELECT id || ' ' || seq || ' ' || status FROM volume_operations ORDER BY seq")

            try await Migrator(logger: testLogger).migrate(client)

            // Every row survived as it was; the upper-case id is canonical now.
            #expect(try await db.query("SELECT id || ' ' || seq || ' ' || status FROM volume_operations ORDER BY seq") == before)
            #expect(try await db.scalar("SELECT volume_id FROM volume_operations WHERE id = '\(ids[4])'") == volumes[4])
            // New rows continue the creation order.
            let next = try await insertOperation(db, volume: randomVolumeId())
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations WHERE seq >= (SELECT seq FROM volume_operations WHERE id = '\(next)')") == 1)

            // The old worker, still running, keeps its lease and finishes its row with 0004's statements...
            #expect(try await db.query("""
                UPDATE volume_operations SET lease_expires_at = now() + 60000::float8 * interval '1 millisecond'
                 WHERE id = ANY(ARRAY['\(ids[0])']::uuid[]) AND status = 'executing' AND claimed_by = 'old-worker'
                RETURNING id::text
                """).count == 1)
            // ... which nobody else can finish for it...
            await expectRejected(db, "UPDATE volume_operations SET status = 'completed' WHERE id = '\(ids[0])'",
                                 message: "only that worker, with its claim token, can change it")
            #expect(try await db.query("""
                UPDATE volume_operations
                   SET status = 'completed', response = '{}'::jsonb, error = NULL, error_code = NULL,
                       lease_expires_at = NULL, completed_at = now(), updated_at = now()
                 WHERE id = '\(ids[0])' AND status = 'executing' AND claimed_by = 'old-worker'
                RETURNING id::text
                """).count == 1)
            // ... but can no longer claim: it would never present a token.
            await expectRejected(db, "SELECT * FROM volume_operations_claim('old-worker', NULL, 1, 60000)", message: "does not exist")

            // A new worker rescues the dead worker's row and finishes it, and the pending ones.
            let recorder = Recorder()
            let worker = startWorker(db, handlers: ["detach": ClosureHandler { operation, _ in
                recorder.record(operation)
                return try .completed(["ok": true])
            }])
            try await eventually("every operation finished") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status IN ('pending', 'executing')") == 0
            }
            try await worker.stop()
            #expect(try await db.query("SELECT status FROM volume_operations ORDER BY seq")
                    == ["completed", "completed", "completed", "cancelled", "completed", "completed"])
            #expect(Set(recorder.all.map { $0.id.uuidString.lowercased() }) == [ids[1], ids[4], next.uuidString.lowercased()])
            #expect(try await db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(ids[1])'") == "2")
        }
    }
}
