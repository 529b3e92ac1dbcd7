import Foundation
import Logging
import PostgresNIO
import Schema
import Worker

/// `unexport`: withdraws a volume's NBD export for new clients and marks its mapping
/// `removed`. Idempotent: an export that is already gone (entry, row or both) is success,
/// so an orchestrator may repeat it after any failure.
///
/// Connections opened before keep reading with nbdkit (the device is opened per client);
/// with nbd-server the export stays loaded until the server restarts (its reload never
/// drops sections).
public struct UnexportHandler: OperationHandler {
    public let backend: any NBDExportBackend

    public init(backend: any NBDExportBackend) {
        self.backend = backend
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
        let exportName = try request.exportName ?? ExportName.forVolume(volumeId)
        do {
            try ExportName.validate(exportName)
        } catch {
            throw QueueFailure.invalidRequest("field 'export_name' is not a valid export name: \(error.message)")
        }

        // The queue serialises operations per volume_id: an export of another volume must be
        // withdrawn by an operation on that volume, or it could race that volume's export.
        let row = try await context.database.decodedRows(
            ExportMappingSQL.byExportName(exportName), logger: context.logger, ExportMapping.init
        ).first
        let owner = row?.volumeId ?? ExportName.volumeId(inExportName: exportName)
        if let owner, owner.lowercased() != volumeId.lowercased() {
            throw QueueFailure.invalidRequest(
                "export \(exportName) belongs to volume \(owner), not to this operation's volume_id \(volumeId); "
                    + "enqueue the unexport with volume_id \(owner)")
        }

        try context.checkCancellation()
        try await backend.remove(exportName: exportName)
        context.logger.info("export removed", metadata: ["export": "\(exportName)", "was_active": "\(row?.status == "active")"])

        let logger = context.logger
        return try .completed(Response(exportName: exportName)) { connection in
            try await connection.query(ExportMappingSQL.markRemoved(exportName: exportName), logger: logger)
        }
    }
}
