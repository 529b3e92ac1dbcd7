import Primitives
import Glibc

/// What one candidate by-id path looks like at this instant.
package enum LinkState: Equatable {
    /// Nothing at that name.
    case absent
    /// A link whose target does not exist (yet): udev may still be creating the node.
    /// `targetPath` is the link's first hop made absolute, so its directory can be watched.
    case dangling(targetPath: String)
    /// The link resolves to an existing file.
    case resolved(ResolvedDevice)
}

/// File-system inspection of by-id links: lstat, realpath and the size of what they point at.
package enum LinkInspection {
    package static func state(ofLink linkPath: String) throws(DeviceError) -> LinkState {
        guard entryExists(linkPath) else { return .absent }
        guard let realPath = resolvedPath(of: linkPath) else {
            let err = errno
            guard err == ENOENT || err == ENOTDIR else {
                throw DeviceError(
                    .deviceUnreadable,
                    "cannot resolve \(linkPath): \(errnoText(err)); "
                        + "check that volumed may read \(parentDirectory(of: linkPath)) and the device node"
                )
            }
            return .dangling(targetPath: firstHopTarget(ofLink: linkPath) ?? linkPath)
        }
        let size = try sizeBytes(ofResolved: realPath, viaLink: linkPath)
        return .resolved(ResolvedDevice(byIdPath: linkPath, devicePath: realPath, sizeBytes: size))
    }

    /// The entries of `directory` named like one of `names` in any case, as paths, in the
    /// order of `names` (an exact spelling before other spellings of the same name).
    ///
    /// udev names a link after the disk serial as the hypervisor reports it, and CloudStack
    /// keeps the volume UUID's case in the serial (`diskUuidToSerial`), so a volume whose id
    /// is upper case in CloudStack has an upper-case link while the id volumed holds may be
    /// lower case (or the other way round): the link is the same disk either way.
    static func entries(in directory: String, namedLike names: [String]) -> [String] {
        ByIdDirectoryListing(reading: directory).entries(namedLike: names)
    }

    /// Whether `path` (followed through links) is a block device.
    static func isBlockDevice(_ path: String) -> Bool { fileType(path) == S_IFBLK }

    /// Whether `path` (followed through links) is a regular file.
    static func isRegularFile(_ path: String) -> Bool { fileType(path) == S_IFREG }

    private static func fileType(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }

    /// Whether anything (a link, dangling or not, or a file) has that name.
    static func entryExists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// `realpath(3)`, nil with errno set when the chain does not resolve.
    static func resolvedPath(of path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The link's own target, made absolute relative to the link's directory
    /// (udev writes relative targets such as `../../vdf`).
    package static func firstHopTarget(ofLink linkPath: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(linkPath, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.hasPrefix("/") ? target : parentDirectory(of: linkPath) + "/" + target
    }

    /// Block device: the kernel's size (BLKGETSIZE64). Regular file (the simulator's
    /// backing files): its length. Anything else cannot hold a volume.
    static func sizeBytes(ofResolved path: String, viaLink linkPath: String) throws(DeviceError) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw DeviceError(.deviceUnreadable, "cannot stat \(path) (via \(linkPath)): \(errnoText(errno))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return UInt64(info.st_size)
        case S_IFBLK:
            return try blockDeviceSize(path, viaLink: linkPath)
        default:
            throw DeviceError(
                .deviceUnreadable,
                "\(linkPath) resolves to \(path), which is neither a block device nor a regular file; "
                    + "remove the stray entry from \(parentDirectory(of: linkPath))"
            )
        }
    }

    /// `_IOR(0x12, 114, size_t)` from <linux/fs.h>; a function-like macro, so Swift cannot import it.
    static let blkGetSize64: UInt = (2 << 30) | (UInt(MemoryLayout<Int>.size) << 16) | (0x12 << 8) | 114

    private static func blockDeviceSize(_ path: String, viaLink linkPath: String) throws(DeviceError) -> UInt64 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            throw DeviceError(
                .deviceUnreadable,
                "cannot open \(path) (via \(linkPath)) to read its size: \(errnoText(err)); "
                    + (err == EACCES ? "run volumed as root or in the disk group" : "check the device node")
            )
        }
        defer { close(fd) }
        var size: UInt64 = 0
        guard ioctl(fd, blkGetSize64, &size) == 0 else {
            throw DeviceError(.deviceUnreadable, "BLKGETSIZE64 failed on \(path) (via \(linkPath)): \(errnoText(errno))")
        }
        return size
    }
}
