import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing
import Worker

/// The claim must cost what it takes, not what is queued: after a burst of inserts into a
/// table whose statistics still say "empty" (autovacuum's analyze lags a burst), a claim of
/// 10 rows once read, checked and sorted every pending row, and the statement trigger's order
/// check scanned the whole table once per claimed row. Work is counted in tuples read, from
/// PostgreSQL's own statistics, so the test does not depend on the machine's speed.
@Suite struct ClaimCostTests {
    static let queued = 5_000
    static let claimed = 10

    @Test func aClaimReadsOnlyAboutTheRowsItTakesWhateverTheStatisticsSay() async throws {
        try await withDatabase { db in
            try await db.client.withConnection { connection in
                // Statistics of an empty table, and trigger plans cached while it was empty (a
                // statement trigger also runs for an UPDATE that touches no row, like an idle
                // heartbeat).
                try await connection.query("VACUUM ANALYZE volume_operations", logger: testLogger)
                try await connection.query("UPDATE volume_operations SET checkpoint = NULL WHERE false", logger: testLogger)
                // A worker's first claim finds the queue empty: a plan kept for the session from
                // then on (plan_cache_mode = force_generic_plan; see migrations/0009) would scan
                // every row for each candidate.
                try await connection.query(
                    QueueSQL.claim(worker: "w", applianceVMId: nil, limit: Self.claimed, leaseMilliseconds: 60_000),
                    logger: testLogger)
                try await connection.query("""
                    INSERT INTO volume_operations (type, volume_id)
                    SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(Self.queued))
                    """, logger: testLogger)
                try await flushStatistics(connection)
                let before = try await tuplesRead(db)

                let rows = try await connection.query(
                    QueueSQL.claim(worker: "w", applianceVMId: nil, limit: Self.claimed, leaseMilliseconds: 60_000),
                    logger: testLogger)
                var count = 0
                for try await _ in rows { count += 1 }
                #expect(count == Self.claimed)
                try await flushStatistics(connection)
                let after = try await tuplesRead(db)

                // Each claimed row: its index entry, one probe of its volume, its heap row; a
                // few more for the lookups of appliances and mappings. Never the queue.
                let read = after - before
                #expect(read < Self.claimed * 20, "the claim read \(read) tuples for \(Self.claimed) rows out of \(Self.queued) pending")
            }
        }
    }

    /// With durable commits every commit waits for its WAL flush, and at small claim batches a
    /// worker spent two on each operation: its claim and its completion. A completion now
    /// claims the next operation in its own commit (migrations/0008). Commits are counted as
    /// the distinct transactions that wrote the operations' claim and completion events, told
    /// apart by their start time (`at` is `now()`; xmin would count the claim's subtransaction).
    @Test func atBatchOneAWorkerSpendsAboutOneCommitPerOperation() async throws {
        try await withDatabase { db in
            let count = 60
            try await db.query("""
                INSERT INTO volume_operations (type, volume_id)
                SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(count))
                """)
            let worker = startWorker(db, handlers: ["detach": ClosureHandler { _, _ in try .completed(["ok": true]) }],
                                     configuration: fastConfiguration(concurrency: 2, batch: 1))
            try await eventually("all operations completed") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed'") == count
            }
            try await worker.stop()
            let commits = try await db.count("""
                SELECT count(DISTINCT at)::text FROM volume_operation_events
                WHERE to_status IN ('executing', 'completed')
                """)
            // Two per operation before (120 here); the claim loop's claims for a slot nobody
            // completes in and the completions that find no slot to fill still commit alone.
            #expect(commits <= count * 3 / 2, "\(commits) commits claimed and completed \(count) operations")
        }
    }

    /// A worker's statements on its claimed rows (completion, checkpoint, heartbeat, retry)
    /// probe the primary key, also when the statistics were taken before the rows were
    /// claimed: naming `status = 'executing'` beside the token let the planner read the partial
    /// index of every executing row instead, for every statement (migrations/0009_worker_plans.sql).
    @Test func aWorkersStatementsReadOnlyTheirOwnRowsWhateverTheStatisticsSay() async throws {
        try await withDatabase { db in
            let running = 2_000
            try await db.client.withConnection { connection in
                try await connection.query("VACUUM ANALYZE volume_operations", logger: testLogger)
                try await connection.query("""
                    INSERT INTO volume_operations (type, volume_id)
                    SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(running))
                    """, logger: testLogger)
                var claimed: [ClaimedOperation] = []
                for row in try await connection.query(
                    QueueSQL.claim(worker: "w", applianceVMId: nil, limit: running, leaseMilliseconds: 60_000),
                    logger: testLogger).collect() {
                    claimed.append(try ClaimedOperation(row: row))
                }
                #expect(claimed.count == running)
                let batch = Array(claimed.prefix(10))
                let (checkpointed, heartbeat, retried, completedOne) = (claimed[10], Array(claimed[11..<21]), claimed[21], claimed[22])
                try await flushStatistics(connection)
                let before = try await tuplesRead(db)

                var written = 0
                func count(_ query: PostgresQuery) async throws {
                    written += try await connection.query(query, logger: testLogger).collect().count
                }
                try await count(QueueSQL.completeBatch(ids: batch.map(\.id), tokens: batch.map(\.claimToken),
                                                       responses: batch.map { _ in "{}" }))
                try await count(QueueSQL.saveCheckpoint(id: checkpointed.id, token: checkpointed.claimToken, checkpoint: "{}"))
                try await count(QueueSQL.heartbeat(ids: heartbeat.map(\.id), tokens: heartbeat.map(\.claimToken),
                                                   leaseMilliseconds: 60_000))
                try await count(QueueSQL.retry(id: retried.id, token: retried.claimToken, delayMilliseconds: 0,
                                               error: "try again", errorCode: "test"))
                try await count(QueueSQL.complete(id: completedOne.id, token: completedOne.claimToken, response: "{}", volumeId: nil))
                #expect(written == 23)
                try await flushStatistics(connection)
                let read = try await tuplesRead(db) - before

                // Each statement: a primary-key probe per row it names (and the order check's
                // probes). Reading the executing rows would be 2,000 per statement.
                #expect(read < 200, "five statements on 23 of \(running) executing rows read \(read) tuples")
            }
        }
    }

    /// Tuples read from `volume_operations` by sequential and index scans so far.
    private func tuplesRead(_ db: TestDatabase) async throws -> Int {
        try await db.count("""
            SELECT (coalesce(t.seq_tup_read, 0) + coalesce(sum(i.idx_tup_read), 0))::text
            FROM pg_stat_user_tables t JOIN pg_stat_user_indexes i USING (relid)
            WHERE t.relname = 'volume_operations'
            GROUP BY t.seq_tup_read
            """)
    }

    /// Makes this backend publish its table statistics now (they are otherwise held back
    /// for up to a second) so another connection reads them.
    private func flushStatistics(_ connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_stat_force_next_flush()", logger: testLogger)
        try await connection.query("SELECT 1", logger: testLogger)
    }
}
