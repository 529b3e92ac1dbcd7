import Primitives
import Glibc

/// Checks on the path an export will serve. It ends up as a symlink target or as the
/// value of an `exportname =` line, so it must be absolute and a single clean line,
/// and it must exist now: an export of a missing device fails every client later, far
/// from the cause.
enum ExportTargetPath {
    static func validate(_ path: String) throws(NBDExportError) {
        guard path.hasPrefix("/") else {
            throw NBDExportError(.invalidDevicePath, "device path \(quotedForMessage(path)) is not absolute; export the by-id path (e.g. /dev/disk/by-id/virtio-<serial>)")
        }
        guard path.utf8.count < Int(PATH_MAX) else {
            throw NBDExportError(.invalidDevicePath, "device path \(quotedForMessage(path)) is longer than PATH_MAX")
        }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw NBDExportError(.invalidDevicePath, "device path \(quotedForMessage(path)) contains a control character (newline, NUL, …), which would corrupt the export configuration")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw NBDExportError(
                .exportTargetMissing,
                "device path \(path) does not resolve (\(errnoText(errno))); check that the volume is attached and its by-id link exists before exporting it"
            )
        }
    }
}
