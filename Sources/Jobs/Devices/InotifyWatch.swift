import Primitives
import Glibc

/// One inotify instance watching a few directories for entries that appear, disappear,
/// are renamed into place or change attributes. Confined to the thread that waits on it.
///
/// Events are only wake-ups: after each one the caller re-reads the file system, which
/// is the truth. Watches are (re-)added before every check so that nothing that happens
/// between the check and the next `poll` is lost.
final class InotifyWatch {
    enum Outcome {
        case changed
        case timedOut
    }

    /// Entries created (`ln -s`, mknod), renamed into place (udev writes links under a
    /// temporary name and renames them), attribute changes, removals, and the watched
    /// directory itself going away.
    static let directoryEvents: UInt32 =
        UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_ATTRIB) | UInt32(IN_DELETE)
        | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR)

    private let fd: Int32

    init() throws(DeviceError) {
        fd = inotify_init1(Int32(IN_NONBLOCK) | Int32(IN_CLOEXEC))
        guard fd >= 0 else {
            throw DeviceError(
                .deviceWatchFailed,
                "inotify_init1 failed: \(errnoText(errno)); raise fs.inotify.max_user_instances (sysctl) if it is exhausted"
            )
        }
    }

    deinit {
        close(fd)
    }

    /// Watches `directory`, or, when it does not exist yet, its nearest existing ancestor
    /// (whose IN_CREATE announces the missing component). Adding a watch that exists
    /// already is a cheap no-op in the kernel.
    func watchDirectoryOrAncestor(_ directory: String) throws(DeviceError) {
        var path = directory
        while true {
            if inotify_add_watch(fd, path, Self.directoryEvents) >= 0 { return }
            let err = errno
            guard (err == ENOENT || err == ENOTDIR), path != "/" else {
                throw DeviceError(
                    .deviceWatchFailed,
                    "cannot watch \(path) with inotify: \(errnoText(err)); "
                        + (err == ENOSPC ? "raise fs.inotify.max_user_watches (sysctl)" : "check the directory's permissions")
                )
            }
            path = parentDirectory(of: path)
        }
    }

    /// Blocks until an event arrives, the deadline passes or `cancellation` fires.
    func waitForChange(until deadline: ContinuousClock.Instant, cancellation: CancellationSignal) throws -> Outcome {
        while true {
            if cancellation.hasFired { throw CancellationError() }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return .timedOut }
            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: cancellation.readFD, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, Int32(clamping: remaining.roundedUpMilliseconds))
            if ready < 0 {
                if errno == EINTR { continue }
                throw DeviceError(.deviceWatchFailed, "poll on inotify failed: \(errnoText(errno))")
            }
            if fds[1].revents != 0 { throw CancellationError() }
            if fds[0].revents != 0 {
                drainEvents()
                return .changed
            }
        }
    }

    /// Reads and discards queued events: the caller re-checks the file system anyway.
    private func drainEvents() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while read(fd, &buffer, buffer.count) > 0 {}
    }
}
