import Primitives
import Devices
import Glibc

/// The default backend: nbdkit's file plugin serving a directory
/// (`nbdkit … file dir=DIR`), in which every entry is an export named after it.
///
/// An export is a symlink `DIR/<export name>` → the by-id path. nbdkit opens the entry
/// for each new client, so:
/// - publishing is visible at once, with no reload and no restart;
/// - re-publishing (after a re-attach or an appliance reboot) re-points the link
///   atomically, and new clients get the new device;
/// - removing unlinks the entry: new clients are told the export is unknown, while
///   connections already open keep reading the device they opened.
public struct NbdkitDirectoryBackend: NBDExportBackend {
    public let host: String
    public let port: Int
    public var kind: NBDBackendKind { .nbdkit }
    private let directory: ExportDirectory

    public var exportDirectory: String { directory.path }

    public init(exportDirectory: String = "/var/lib/volumed/exports", host: String = "127.0.0.1", port: Int = 10809) {
        self.directory = ExportDirectory(path: exportDirectory, setting: "VOLUMED_NBD_EXPORT_DIR", reader: "the dir= nbdkit serves")
        self.host = host
        self.port = port
    }

    public func publish(exportName: String, devicePath: String) async throws {
        try ExportName.validate(exportName)
        try ExportTargetPath.validate(devicePath)
        try directory.requireExisting()
        do {
            try AtomicReplace.symlink(at: directory.entryPath(exportName), pointingTo: devicePath)
        } catch {
            throw directory.error(for: error, doing: "publish \(exportName)")
        }
    }

    public func remove(exportName: String) async throws {
        try ExportName.validate(exportName)
        try directory.requireExisting()
        do {
            try AtomicReplace.remove(directory.entryPath(exportName))
        } catch {
            throw directory.error(for: error, doing: "remove \(exportName)")
        }
    }

    /// Every entry nbdkit would serve: symlinks with their target, other files as
    /// themselves. Hidden entries (our temporary names) are skipped, as nbdkit skips them.
    public func listExports() async throws -> [ExportEntry] {
        try directory.requireExisting()
        guard let stream = opendir(directory.path) else {
            throw NBDExportError(.exportDirectoryUnwritable, "cannot list export directory \(directory.path): \(errnoText(errno)); give the volumed user read access or set VOLUMED_NBD_EXPORT_DIR")
        }
        defer { closedir(stream) }
        var entries: [ExportEntry] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard !name.hasPrefix(".") else { continue }
            let path = directory.entryPath(name)
            entries.append(ExportEntry(name: name, targetPath: LinkInspection.firstHopTarget(ofLink: path) ?? path))
        }
        return entries.sorted { $0.name < $1.name }
    }
}
