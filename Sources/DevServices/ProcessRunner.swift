import Foundation

/// Runs a program to completion without blocking a thread of the cooperative pool.
public enum ProcessRunner {
    public struct Output: Sendable {
        public let status: Int32
        public let output: String
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Runs `arguments` (the first is the program, looked up on PATH when not a path) and
    /// returns its exit status and combined output. `environment` is added to this process's.
    ///
    /// Output goes to a temporary file, not a pipe: a daemon the program leaves behind (as
    /// `pg_ctl start` does) would otherwise hold the pipe open and the read would never end.
    /// A program still running after `timeout` is SIGKILLed and the run fails naming it, so
    /// a hung child fails its caller instead of hanging it.
    @discardableResult
    public static func run(_ arguments: [String], check: Bool = true, environment: [String: String] = [:],
                           timeout: Duration = .seconds(300)) async throws -> Output {
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("volumed-run-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let child = try ChildProcess(executable: URL(fileURLWithPath: try resolve(arguments[0])),
                                     arguments: Array(arguments.dropFirst()), outputPath: outputPath, environment: environment)
        let finished: Int32? = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await child.waitForExit() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            let first = await group.next() ?? nil
            if first == nil { child.send(SIGKILL) }
            return first
        }
        guard let status = finished else {
            throw Failure(description: "\(arguments.joined(separator: " ")) did not finish within \(timeout) and was killed")
        }
        let data = FileManager.default.contents(atPath: outputPath) ?? Data()
        let output = Output(status: status, output: String(decoding: data, as: UTF8.self))
        if check && status != 0 {
            throw Failure(description: "\(arguments.joined(separator: " ")) exited with \(status): \(output.output)")
        }
        return output
    }

    /// The absolute path of `program`, searching PATH and the usual system folders.
    public static func resolve(_ program: String) throws -> String {
        if program.contains("/") { return program }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for folder in folders {
            let candidate = "\(folder)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Failure(description: "\(program) was not found on PATH; install it (see .ci/run for the Debian packages)")
    }
}
