import Primitives
import NBD
import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

extension OperationType {
    public static let unexport: OperationType = "unexport"
}

/// `unexport`: withdraws a volume's NBD export for new clients and marks its mapping
/// `removed`. Idempotent: an export that is already gone (entry, row or both) is success,
/// so an orchestrator may repeat it after any failure. What open connections keep depends on
/// the backend (see `NbdkitDirectoryBackend`, `NbdServerConfBackend`).
public struct UnexportHandler: RegisteredOperationHandler {
    static let type = OperationType.unexport
    static let firstStep = "removing the NBD export"

    public let backend: any NBDExportBackend

    public init(backend: any NBDExportBackend) {
        self.backend = backend
    }

    init?(environment: OperationEnvironment, exportBackend: (any NBDExportBackend)?) {
        guard let exportBackend else { return nil }
        self.init(backend: exportBackend)
    }

    struct Request: Decodable {
        let exportName: String?

        enum CodingKeys: String, CodingKey {
            case exportName = "export_name"
        }
    }

    struct Response: Encodable {
        let exportName: String

        enum CodingKeys: String, CodingKey {
            case exportName = "export_name"
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let request = try JSONDecoder().decode(Request.self, from: Data(operation.request.utf8))
        let volumeId = try ExportTarget.volumeId(of: operation)
        let ownName = try ExportName.forVolume(volumeId)
        let exportName = request.exportName ?? ownName
        // CONTRACT §3: an export_name, if given, must be the volume's own. The name becomes a
        // file name in the export directory: anything else (another volume's export, an entry
        // volumed never made) is refused before anything is removed.
        guard exportName == ownName else {
            if let other = ExportName.volumeId(inExportName: exportName) {
                throw QueueFailure.invalidRequest(
                    "field 'export_name': export \(exportName) belongs to volume \(other), not to this operation's "
                        + "volume_id \(volumeId); enqueue the unexport with volume_id \(other), or omit export_name")
            }
            throw QueueFailure.invalidRequest(
                "field 'export_name' must be this volume's own export name \(ownName) (or be omitted), got "
                    + "\(quotedForMessage(exportName)); volumed removes only the exports it created")
        }
        let row = try await context.database.decodedRows(
            ExportMappingsTable.byExportName(exportName), logger: context.logger, ExportMapping.init
        ).first

        try context.checkCancellation()
        try await backend.remove(exportName: exportName)
        context.logger.info("export removed", metadata: ["export": "\(exportName)", "was_active": "\(row?.status == "active")"])

        let logger = context.logger
        return try .completed(Response(exportName: exportName)) { connection in
            try await connection.query(ExportMappingsTable.markRemoved(exportName: exportName), logger: logger)
        }
    }
}
