import Primitives
import Glibc

/// The directory a backend keeps its export entries in, with the checks and messages
/// that tell an operator which setting to fix.
struct ExportDirectory: Sendable {
    let path: String
    /// The environment variable that configures it, named in every error.
    let setting: String
    /// Who reads the directory, for messages ("nbdkit's dir=", "nbd-server's includedir").
    let reader: String

    init(path: String, setting: String, reader: String) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.path = trimmed
        self.setting = setting
        self.reader = reader
    }

    func entryPath(_ name: String) -> String { path + "/" + name }

    /// Fails with a permanent error when the directory is missing or not a directory.
    func requireExisting() throws(NBDExportError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw NBDExportError(
                .exportDirectoryMissing,
                "export directory \(path) does not exist (\(errnoText(errno))); create it (mkdir -p \(path)) "
                    + "or set \(setting) to \(reader)"
            )
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw NBDExportError(.exportDirectoryMissing, "export directory \(path) is not a directory; set \(setting) to \(reader)")
        }
    }

    /// Maps a failed create/rename/unlink to the error an operator can act on.
    func error(for failure: AtomicReplace.Failure, doing action: String) -> NBDExportError {
        if failure.isPermission {
            return NBDExportError(
                .exportDirectoryUnwritable,
                "cannot \(action) in export directory \(path): \(failure.text); give the volumed user write access "
                    + "to \(path) or set \(setting) to a directory it can write that is \(reader)"
            )
        }
        if failure.code == ENOENT || failure.code == ENOTDIR {
            return NBDExportError(
                .exportDirectoryMissing,
                "export directory \(path) disappeared while trying to \(action) (\(failure.text)); recreate it or set \(setting)"
            )
        }
        return NBDExportError(.exportWriteFailed, "cannot \(action) in export directory \(path): \(failure.text)")
    }
}
