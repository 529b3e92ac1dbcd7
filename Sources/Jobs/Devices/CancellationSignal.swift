import Primitives
import Glibc
import Synchronization

/// A self-pipe (a socket pair, because `pipe2` is not visible from Swift and the
/// close-on-exec flag must be set atomically while other threads spawn processes) that lets Swift task cancellation interrupt a thread blocked in `poll(2)`.
///
/// `fire()` may be called from any thread, at any time, even after `close()`: the mutex
/// makes sure a late cancellation never writes into a descriptor number that has since
/// been closed and reused by something else.
final class CancellationSignal: Sendable {
    private struct Pipe {
        var readFD: Int32
        var writeFD: Int32
        var fired: Bool
    }

    private let pipe: Mutex<Pipe?>
    /// The end to add to a `poll(2)` set; readable once the signal has fired.
    let readFD: Int32

    init() throws(DeviceError) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            throw DeviceError(.deviceWatchFailed, "cannot create a wake-up pipe: \(errnoText(errno)); check the process's open-file limit")
        }
        readFD = fds[0]
        pipe = Mutex(Pipe(readFD: fds[0], writeFD: fds[1], fired: false))
    }

    func fire() {
        pipe.withLock { state in
            guard let current = state, !current.fired else { return }
            var byte: UInt8 = 1
            _ = write(current.writeFD, &byte, 1)
            state?.fired = true
        }
    }

    var hasFired: Bool { pipe.withLock { $0?.fired ?? true } }

    func close() {
        pipe.withLock { state in
            guard let current = state else { return }
            _ = Glibc.close(current.readFD)
            _ = Glibc.close(current.writeFD)
            state = nil
        }
    }
}
