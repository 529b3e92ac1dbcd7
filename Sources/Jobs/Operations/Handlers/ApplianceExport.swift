import NBD
import Foundation
import PostgresNIO
import Worker
import Schema

/// The NBD export an attach to the appliance makes when asked (`"export": true`, which the
/// original daemon's HTTP attach always implied): `migration-vol-<volume_id>` for the by-id
/// link, recorded as keyed to the appliance itself (`vm_id` and `vm_name` the appliance's id,
/// the lowest free disk number), as the original did. A later `export` for a source VM takes
/// the entry over (see `ExportHandler`); a detach removes it (see `DetachVolume`).
/// Publishing is `ExportPublisher`'s, safe to repeat as it says.
struct ApplianceExport: Sendable {
    let exporter: ExportPublisher?

    /// What the attach response says about the export: `export_name` and `nbd_port`, or
    /// `export_error` `{code, message}`.
    struct Outcome: Encodable, Sendable {
        var exportName: String?
        var nbdPort: Int?
        var error: ErrorText?

        struct ErrorText: Encodable, Sendable {
            let code: String
            let message: String
        }

        enum CodingKeys: String, CodingKey {
            case exportName = "export_name"
            case nbdPort = "nbd_port"
            case error = "export_error"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(exportName, forKey: .exportName)
            try container.encode(nbdPort, forKey: .nbdPort)
            try container.encode(error, forKey: .error)
        }
    }

    struct Result: Sendable {
        let outcome: Outcome
        /// The row to write when completing; nil when an active row already records the export.
        let commit: (@Sendable (PostgresConnection) async throws -> Void)?
    }

    /// Never throws for an export that fails: the volume is attached in CloudStack by now,
    /// and failing the operation would leave it attached without its `device_mappings` row
    /// (and repeat nothing useful, the failure being the NBD server's). The attach completes
    /// with `export_error` instead, logged as an error, as the original daemon's attach did;
    /// a caller reading the export gets a clear 404, and `POST /exports` can make it later.
    /// Interruptions (lease lost, cancel, shutdown) still propagate.
    /// `sizeBytes`: the size of the disk the attach just verified behind `byIdPath`; the export
    /// must serve exactly that.
    func export(volumeId: String, applianceVMId: String, byIdPath: String, sizeBytes: UInt64, context: OperationContext) async throws -> Result {
        do {
            return try await publish(volumeId: volumeId, applianceVMId: applianceVMId, byIdPath: byIdPath, sizeBytes: sizeBytes,
                                     context: context)
        } catch let interruption as OperationInterruption {
            throw interruption
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let failure = error as? any OperationFailure
            let text = Outcome.ErrorText(code: failure?.code ?? "nbd_export_failed", message: failure?.message ?? "\(error)")
            context.logger.error("attach: the NBD export of the attached volume failed; the attach stands",
                                 metadata: ["volume": "\(volumeId)", "code": "\(text.code)", "error": "\(text.message)"])
            return Result(outcome: Outcome(error: text), commit: nil)
        }
    }

    private func publish(
        volumeId: String, applianceVMId: String, byIdPath: String, sizeBytes: UInt64, context: OperationContext
    ) async throws -> Result {
        guard let exporter else {
            throw QueueFailure(code: "export_unavailable",
                               message: "this volumed has no NBD export backend configured; set VOLUMED_NBD_EXPORT_DIR (see README, Configuration)")
        }
        let exportName = try ExportName.forVolume(volumeId)
        let logger = context.logger
        let active = try await context.database.decodedRows(ExportMappingsTable.activeByVolume(volumeId), logger: logger, ExportMapping.init)
        if let existing = active.first(where: { $0.exportName == exportName }) {
            // Already exported (a repeated attach, or a source VM's export): serve what the row says.
            try await exporter.ensureServing(exportName: exportName, devicePath: byIdPath, expectedSize: sizeBytes, context: context)
            return Result(outcome: Outcome(exportName: exportName, nbdPort: existing.nbdPort), commit: nil)
        }
        try await exporter.publishChecked(exportName: exportName, devicePath: byIdPath, expectedSize: sizeBytes, context: context)
        let port = exporter.backend.port
        let statements = ExportMappingsTable.upsertApplianceExport(
            applianceVMId: applianceVMId, volumeId: volumeId, exportName: exportName, devicePath: byIdPath, nbdPort: port)
        return Result(outcome: Outcome(exportName: exportName, nbdPort: port)) { connection in
            for statement in statements {
                try await connection.query(statement, logger: logger)
            }
        }
    }
}
