import Logging
import PostgresNIO
import Schema

extension PostgresClient {
    /// Runs a read the audit wrote itself (no outside input) and returns every cell as text;
    /// the SQL casts what is not text already.
    func textRows(_ sql: String, logger: Logger) async throws -> [[String?]] {
        // `rows`, not `query`: the killer reads while PostgreSQL restarts, and a plain query on a
        // connection closed under it never returns (see `failingWhenClosed`), which would hold
        // the run's task group open forever.
        try await rows(PostgresQuery(unsafeSQL: sql), logger: logger).map { row in
            let cells = row.makeRandomAccess()
            return try (0..<cells.count).map { try cells[$0].decode(String?.self) }
        }
    }
}
