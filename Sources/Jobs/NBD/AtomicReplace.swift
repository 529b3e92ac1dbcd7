import Primitives
import Glibc

/// Creates or replaces a directory entry in one step: the new entry is made under a
/// hidden temporary name in the same directory, then `rename(2)`d over the final name.
/// A reader (nbdkit opening an export, nbd-server parsing `includedir`) sees the old
/// entry or the new one, never a missing or half-written one.
enum AtomicReplace {
    /// An errno from one step, for the caller to turn into an error that names its setting.
    struct Failure: Error {
        let step: String
        let path: String
        let code: Int32

        var text: String { "\(step) \(path): \(errnoText(code))" }
        /// The directory refuses writes: permissions, a read-only mount, a kernel file system.
        var isPermission: Bool { code == EACCES || code == EPERM || code == EROFS }
    }

    static func symlink(at path: String, pointingTo target: String) throws(Failure) {
        let temporary = temporaryName(for: path)
        guard Glibc.symlink(target, temporary) == 0 else {
            throw Failure(step: "symlink", path: temporary, code: errno)
        }
        try moveIntoPlace(temporary, path)
    }

    /// Writes `contents` with mode 0644 and flushes it to disk before the rename, so a
    /// crash cannot leave an empty file under the final name.
    static func file(at path: String, contents: String) throws(Failure) {
        let temporary = temporaryName(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(step: "create", path: temporary, code: errno) }
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw Failure(step: "write", path: temporary, code: code)
            }
            written += count
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw Failure(step: "fsync", path: temporary, code: code)
        }
        close(fd)
        try moveIntoPlace(temporary, path)
    }

    /// Deletes `path`; a name that is already gone is success.
    static func remove(_ path: String) throws(Failure) {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Failure(step: "unlink", path: path, code: errno)
        }
    }

    /// `DIR/.NAME.tmp-<random>`: same directory (rename is atomic only within one file
    /// system), and a leading dot that export names may not have, so a listing or
    /// nbd-server's `*.conf` glob never picks it up as an export.
    static func temporaryName(for path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return parentDirectory(of: path) + "/." + name + ".tmp-" + String(UInt64.random(in: 0 ... .max), radix: 36)
    }

    private static func moveIntoPlace(_ temporary: String, _ path: String) throws(Failure) {
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw Failure(step: "rename", path: path, code: code)
        }
    }
}
