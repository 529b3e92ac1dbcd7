import NBD
import Foundation
import Logging
import PostgresNIO
import Worker
import Schema

/// Takes a volume's NBD exports down before a forced detach or delete (and when reconcile
/// removes the mapping of a volume CloudStack shows detached): removes each active export's
/// backend entry, then marks the rows `removed`.
///
/// The canonical entry `migration-vol-<volume_id>` is removed even without an active row: it
/// would otherwise keep pointing at a device that is about to disappear. Entries go first and
/// rows second, so a failure in between leaves rows that a retry (or the reconciler) settles,
/// never a row marked removed whose entry still serves.
public struct BackendExportRemover: ExportRemover {
    public let backend: any NBDExportBackend

    public init(backend: any NBDExportBackend) {
        self.backend = backend
    }

    public func removeExports(volumeId: String, context: OperationContext) async throws {
        let logger = context.logger
        _ = try await context.database.withGuardedConnection { connection in
            try await removeExports(volumeId: volumeId, connection: connection, logger: logger)
        }
    }

    /// The same on `connection`, so a caller can make the row updates part of its own
    /// transaction. Returns the names of the rows marked removed.
    @discardableResult
    public func removeExports(volumeId: String, connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let rows = try await connection.query(ExportMappingsTable.activeByVolume(volumeId), logger: logger).collect()
            .map(ExportMapping.init(row:))
        var names = rows.map(\.exportName)
        if let canonical = try? ExportName.forVolume(volumeId), !names.contains(canonical) {
            names.append(canonical)
        }
        for name in names {
            try await backend.remove(exportName: name)
        }
        for row in rows {
            try await connection.query(ExportMappingsTable.markRemoved(exportName: row.exportName), logger: logger)
        }
        if !rows.isEmpty {
            logger.notice("removed exports", metadata: [
                "volume": "\(volumeId)", "exports": "\(rows.map(\.exportName).joined(separator: ","))",
            ])
        }
        return rows.map(\.exportName)
    }
}
