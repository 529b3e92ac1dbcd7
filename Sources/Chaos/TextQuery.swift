import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs a read the audit wrote itself (no outside input) and returns every cell as text;
    /// the SQL casts what is not text already.
    func textRows(_ sql: String, logger: Logger) async throws -> [[String?]] {
        let rows = try await query(PostgresQuery(unsafeSQL: sql), logger: logger)
        var result: [[String?]] = []
        for try await row in rows {
            let cells = row.makeRandomAccess()
            result.append(try (0..<cells.count).map { try cells[$0].decode(String?.self) })
        }
        return result
    }
}
