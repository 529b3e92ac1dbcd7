import Primitives
import Foundation

/// nbd-server with one `<export name>.conf` per export in its `includedir`
/// (`VOLUMED_NBD_CONFIG_DIR`), reloaded with SIGHUP (`VOLUMED_NBD_PID_FILE`): the
/// original Volume Daemon's layout, for appliances that must keep nbd-server.
///
/// Limits of nbd-server itself, which this backend cannot change:
/// - SIGHUP only adds sections. `remove` deletes the file, so the export is gone after
///   the next restart, but a running nbd-server keeps serving it until then.
/// - Reloading is unsafe before 3.25 (see `NbdServerVersion.firstSafeReload`), so
///   `publish` refuses older servers and points to the nbdkit backend.
/// - One unparsable file in `includedir` fails the whole parse, hence atomic writes.
public struct NbdServerConfBackend: NBDExportBackend {
    public let port: Int
    public let pidFile: String
    /// The nbd-server binary whose version is checked (`$PATH` lookup when not absolute).
    public let serverExecutable: String
    public var kind: NBDBackendKind { .nbdServer }
    private let directory: ExportDirectory

    public var configDirectory: String { directory.path }

    public init(
        configDirectory: String = "/etc/nbd-server/conf.d",
        pidFile: String = "/run/nbd-server.pid",
        port: Int = 10809,
        serverExecutable: String = "nbd-server"
    ) {
        self.directory = ExportDirectory(path: configDirectory, setting: "VOLUMED_NBD_CONFIG_DIR", reader: "nbd-server's includedir")
        self.pidFile = pidFile
        self.port = port
        self.serverExecutable = serverExecutable
    }

    /// Checks the server version, writes the export's file, then asks nbd-server to
    /// reload. If the reload fails the file stays: the next reload or restart loads it.
    public func publish(exportName: String, devicePath: String) async throws {
        try ExportName.validate(exportName)
        try ExportTargetPath.validate(devicePath)
        try NbdServerVersion.requireSafeReload(await NbdServerVersion.installed(executable: serverExecutable))
        try writeExportFile(exportName: exportName, devicePath: devicePath)
        try reloadServer()
    }

    /// Deletes the export's file (missing is fine). No reload: nbd-server would not drop
    /// the export anyway; it disappears at the next restart.
    public func remove(exportName: String) async throws {
        try ExportName.validate(exportName)
        try directory.requireExisting()
        do {
            try AtomicReplace.remove(directory.entryPath(NbdServerExportFile.fileName(for: exportName)))
        } catch {
            throw directory.error(for: error, doing: "remove \(exportName)")
        }
    }

    /// The exports described by the `.conf` files (what a restart would load).
    public func listExports() async throws -> [ExportEntry] {
        try directory.requireExisting()
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw NBDExportError(.exportDirectoryUnwritable, "cannot list \(directory.path): \(error); give the volumed user read access or set VOLUMED_NBD_CONFIG_DIR")
        }
        return names
            .filter { !$0.hasPrefix(".") && $0.hasSuffix(NbdServerExportFile.suffix) }
            .compactMap { name in
                (try? String(contentsOfFile: directory.entryPath(name), encoding: .utf8)).flatMap(NbdServerExportFile.parse)
            }
            .sorted { $0.name < $1.name }
    }

    /// Writes `<export name>.conf` atomically without reloading the server, and returns
    /// its path. `publish` uses it; on its own it prepares exports that the next start of
    /// nbd-server loads (a fresh start does not go through the unsafe reload path).
    @discardableResult
    public func writeExportFile(exportName: String, devicePath: String) throws -> String {
        try ExportName.validate(exportName)
        try ExportTargetPath.validate(devicePath)
        try directory.requireExisting()
        let path = directory.entryPath(NbdServerExportFile.fileName(for: exportName))
        do {
            try AtomicReplace.file(at: path, contents: NbdServerExportFile.contents(exportName: exportName, devicePath: devicePath))
        } catch {
            throw directory.error(for: error, doing: "write \(exportName)")
        }
        return path
    }

    /// SIGHUP to the pid in the pid file, after checking that process exists.
    private func reloadServer() throws(NBDExportError) {
        let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 else {
            throw NBDExportError(
                .nbdServerNotRunning,
                "no nbd-server pid in \(pidFile); start nbd-server (systemctl start nbd-server) or set VOLUMED_NBD_PID_FILE to its pid file"
            )
        }
        guard kill(pid, SIGHUP) == 0 else {
            throw NBDExportError(
                .nbdServerNotRunning,
                "cannot signal nbd-server pid \(pid) from \(pidFile): \(errnoText(errno)); the pid file is stale or nbd-server runs as another user: "
                    + "restart nbd-server, or run volumed where it may signal it"
            )
        }
    }
}
