import Foundation
import Logging
import PostgresNIO
import Worker

/// Takes a volume's NBD exports down before a forced detach or delete: removes each active
/// export's backend entry, then marks the rows `removed`.
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
        let rows = try await context.database.decodedRows(ExportMappingSQL.activeByVolume(volumeId), logger: logger, ExportMapping.init)
        var names = rows.map(\.exportName)
        if let canonical = try? ExportName.forVolume(volumeId), !names.contains(canonical) {
            names.append(canonical)
        }
        for name in names {
            try await backend.remove(exportName: name)
        }
        for row in rows {
            try await context.database.query(ExportMappingSQL.markRemoved(exportName: row.exportName), logger: logger)
        }
        if !rows.isEmpty {
            logger.notice("removed exports before detaching", metadata: [
                "volume": "\(volumeId)", "exports": "\(rows.map(\.exportName).joined(separator: ","))",
            ])
        }
    }
}
