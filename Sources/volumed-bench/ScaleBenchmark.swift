import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Schema

/// `volumed-bench scale`: claim latency and drain throughput with a large history of
/// finished operations beside the pending ones, against the same with no history. The claim
/// path reads only partial indexes of unfinished rows, so history must not slow it down.
struct ScaleBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Claim latency and drain throughput with a large history.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Finished operations of history (4 per volume).") var history: Int = 1_000_000
    @Option(help: "Pending operations while claims are timed, and drained afterwards.") var pending: Int = 10_000
    @Option(help: "Timed claims.") var claims: Int = 300
    @Option(help: "Rows per timed claim.") var batch: Int = 10
    @Option(help: "Claim batch of the drain's worker.") var drainBatch: Int = 100

    struct Figures {
        var claimP50 = 0.0, claimP99 = 0.0, tuplesPerClaim = 0.0, drainRate = 0.0
    }

    func run() async throws {
        let logger = benchLogger()
        try await database.withDatabase(logger: logger) { url, client in
            var results: [(history: Int, figures: Figures)] = []
            for rows in [0, history] {
                try await client.query("TRUNCATE volume_operations, volume_operation_events", logger: logger)
                if rows > 0 { try await loadHistory(rows, client: client, logger: logger) }
                try await client.query("VACUUM ANALYZE volume_operations", logger: logger)
                var figures = try await timeClaims(client: client, logger: logger)
                try await client.query("DELETE FROM volume_operations WHERE status IN ('pending', 'executing')", logger: logger)
                let drain = try await measureDrain(url: url, client: client, processes: 1, batch: drainBatch,
                                                   count: pending, logger: logger)
                figures.drainRate = Double(pending) / drain.seconds
                results.append((rows, figures))
            }
            print("history rows  claim p50 ms  claim p99 ms  tuples read/claim  drain ops/s")
            for (rows, figures) in results {
                print(String(format: "%12d  %12.2f  %12.2f  %17.1f  %11.0f",
                             rows, figures.claimP50, figures.claimP99, figures.tuplesPerClaim, figures.drainRate))
            }
            let (empty, full) = (results[0].figures, results[1].figures)
            print(String(format: "with/without history: claim p50 %.2f, p99 %.2f, drain %.2f",
                         full.claimP50 / empty.claimP50, full.claimP99 / empty.claimP99, full.drainRate / empty.drainRate))
        }
    }

    /// Finished operations as years of use leave them: four per volume (create, attach,
    /// detach, delete), spread over 90 days. Loaded with triggers off (a superuser session in
    /// replica mode): the audit rows and notifications of history are not what is measured, and
    /// the rules an INSERT obeys (bookkeeping columns are the queue's, seq is drawn by the admit
    /// trigger) are set aside to write finished rows directly, seq drawn here instead.
    private func loadHistory(_ rows: Int, client: PostgresClient, logger: Logger) async throws {
        let start = ContinuousClock.now
        try await client.withConnection { connection in
            try await connection.query("SET session_replication_role = replica", logger: logger)
            try await connection.query("""
                INSERT INTO volume_operations (seq, type, status, volume_id, vm_id, claimed_by, attempts, response,
                                               created_at, started_at, updated_at, completed_at)
                SELECT nextval('volume_operations_seq'), (ARRAY['create', 'attach', 'detach', 'delete'])[i % 4 + 1], 'completed',
                       uuid_in(md5('volume' || (i / 4)::text)::cstring)::text,
                       uuid_in(md5('vm' || (i / 400)::text)::cstring)::text, 'history-worker', 1, '{}',
                       at, at, at + interval '2 seconds', at + interval '2 seconds'
                FROM generate_series(0, \(rows) - 1) AS i,
                     LATERAL (SELECT now() - interval '90 days' * random() AS at) AS t
                """, logger: logger)
            try await connection.query("RESET session_replication_role", logger: logger)
        }
        print(String(format: "loaded %d history rows in %.1f s", rows, (ContinuousClock.now - start).seconds))
    }

    /// `claims` claims of `batch` rows from `pending` queued operations, each batch completed
    /// before the next claim, on one connection; with the tuples the claims read.
    private func timeClaims(client: PostgresClient, logger: Logger) async throws -> Figures {
        try await client.query("""
            INSERT INTO volume_operations (type, volume_id)
            SELECT 'detach', gen_random_uuid()::text FROM generate_series(1, \(pending))
            """, logger: logger)
        return try await client.withConnection { connection in
            let before = try await tuplesRead(connection, logger: logger)
            var durations: [Double] = []
            for _ in 0..<claims {
                let start = ContinuousClock.now
                let rows = try await connection.query(
                    QueueSQL.claim(worker: "scale-bench", applianceVMId: nil, limit: batch, leaseMilliseconds: 60_000),
                    logger: logger)
                var claimed: [ClaimedOperation] = []
                for try await row in rows { claimed.append(try ClaimedOperation(row: row)) }
                let ids = claimed.map(\.id)
                durations.append((ContinuousClock.now - start).seconds * 1000)
                guard ids.count == batch else { throw BenchError("a claim returned \(ids.count) of \(batch) rows") }
                try await connection.query(
                    QueueSQL.completeBatch(ids: ids, tokens: claimed.map(\.claimToken), responses: ids.map { _ in "{}" }), logger: logger)
            }
            let after = try await tuplesRead(connection, logger: logger)
            durations.sort()
            return Figures(claimP50: durations.percentile(0.5), claimP99: durations.percentile(0.99),
                           tuplesPerClaim: Double(after - before) / Double(claims))
        }
    }

    /// Tuples read from `volume_operations` by all scans so far, after publishing this
    /// backend's statistics (held back for up to a second otherwise). Includes the
    /// completions' primary-key lookups, the same with and without history.
    private func tuplesRead(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query("SELECT pg_stat_force_next_flush()", logger: logger)
        try await connection.query("SELECT pg_sleep(0)", logger: logger)
        let rows = try await connection.query("""
            SELECT (coalesce(t.seq_tup_read, 0) + coalesce(sum(i.idx_tup_read), 0))::int8
            FROM pg_stat_user_tables t JOIN pg_stat_user_indexes i USING (relid)
            WHERE t.relname = 'volume_operations'
            GROUP BY t.seq_tup_read
            """, logger: logger)
        var total = 0
        for try await value in rows.decode(Int.self) { total = value }
        return total
    }
}
