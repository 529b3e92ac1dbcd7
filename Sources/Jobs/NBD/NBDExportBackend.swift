/// Which NBD server serves the exports (`VOLUMED_NBD_BACKEND`).
public enum NBDBackendKind: String, Sendable, CaseIterable {
    /// nbdkit's file plugin with `dir=`: every entry of a directory is an export. The default.
    case nbdkit
    /// nbd-server with one `.conf` per export in its `includedir`, reloaded with SIGHUP
    /// (the original Volume Daemon's layout).
    case nbdServer = "nbd-server"
}

/// One export as the backend has it configured: its name and the path it serves.
public struct ExportEntry: Sendable, Equatable, Hashable {
    public let name: String
    /// What the export opens for each new client, normally a stable by-id link.
    public let targetPath: String

    public init(name: String, targetPath: String) {
        self.name = name
        self.targetPath = targetPath
    }
}

/// The seam between the export handlers and the NBD server that serves the bytes.
///
/// `publish` creates or re-points an export; `remove` withdraws it and succeeds when it
/// is already gone. Neither ever disturbs other exports.
public protocol NBDExportBackend: Sendable {
    var kind: NBDBackendKind { get }
    /// The TCP port clients connect to (`VOLUMED_NBD_PORT`), recorded in `vm_export_mappings.nbd_port`.
    var port: Int { get }

    /// Makes `exportName` serve `devicePath` (an absolute path, normally the by-id link).
    func publish(exportName: String, devicePath: String) async throws
    /// Withdraws `exportName` for new clients. Idempotent.
    func remove(exportName: String) async throws
    /// The exports currently configured, sorted by name.
    func listExports() async throws -> [ExportEntry]
}
