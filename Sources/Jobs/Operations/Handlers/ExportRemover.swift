import Worker

/// Removes a volume's active NBD exports before a forced detach (or a forced delete).
///
/// The seam between the CloudStack handlers here and the export manager: the detach
/// handler must not detach a disk an NBD client is reading unless asked to, and when it is
/// asked to (`force`), whoever owns exports takes them down first and marks their
/// `vm_export_mappings` rows `removed`.
public protocol ExportRemover: Sendable {
    func removeExports(volumeId: String, context: OperationContext) async throws
}
