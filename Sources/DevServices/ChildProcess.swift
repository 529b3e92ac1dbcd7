import Foundation
import Synchronization

/// A child process spawned with a clean signal state.
///
/// Foundation's `Process` passes on the signal mask of the thread that launches it, and
/// threads of Swift's concurrency pool have SIGTERM blocked: an nbdkit started that way
/// ignores `terminate()` and `--exit-with-parent` and outlives the tests. Here the child
/// gets an empty mask and default handlers, so SIGTERM stops it.
public final class ChildProcess: Sendable {
    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let pid: pid_t
    /// Exit code, or 128 + signal number when it was killed (the shell's convention).
    private let exit: Task<Int32, Never>
    private let reaped: ReapedFlag

    /// Starts `executable` with stdin from /dev/null and stdout and stderr appended to
    /// `outputPath` (or /dev/null).
    /// `environment` is added to (and overrides) this process's environment.
    public init(executable: URL, arguments: [String], outputPath: String? = nil, environment: [String: String] = [:]) throws {
        let pid = try Self.spawn(executable: executable, arguments: arguments, outputPath: outputPath, environment: environment)
        self.pid = pid
        let reaped = ReapedFlag()
        self.reaped = reaped
        // waitpid blocks, so it gets a thread of its own rather than a pool thread.
        exit = Task {
            await withCheckedContinuation { continuation in
                Thread {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    reaped.value.withLock { $0 = true }
                    let signal = status & 0x7F
                    continuation.resume(returning: signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
                }.start()
            }
        }
    }

    /// Runs a program to its end on the calling thread, for the few places that cannot
    /// await, such as an `atexit` handler (where Foundation's `Process` can deadlock: its
    /// exit monitoring needs threads that are being torn down). Returns the exit status,
    /// or nil when the program could not be started.
    @discardableResult
    public static func runToCompletion(executable: URL, arguments: [String]) -> Int32? {
        guard let pid = try? spawn(executable: executable, arguments: arguments, outputPath: nil, environment: [:]) else {
            return nil
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xFF
    }

    private static func spawn(executable: URL, arguments: [String], outputPath: String?, environment: [String: String]) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        let result = posix_spawn(&child, executable.path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(executable.path): \(String(cString: strerror(result)))")
        }
        return child
    }

    public var hasExited: Bool { reaped.value.withLock { $0 } }

    /// Sends `signal` unless the child has already been reaped (its pid may be reused).
    public func send(_ signal: Int32) {
        reaped.value.withLock { isReaped in
            if !isReaped { kill(pid, signal) }
        }
    }

    public func waitForExit() async -> Int32 {
        await exit.value
    }
}

/// Set once waitpid has collected the child; shared with the reaping thread.
private final class ReapedFlag: Sendable {
    let value = Mutex(false)
}
