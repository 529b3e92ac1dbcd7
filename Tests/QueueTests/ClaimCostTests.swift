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
