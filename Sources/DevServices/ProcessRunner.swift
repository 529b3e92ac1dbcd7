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
    /// returns its exit status and combined output.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil,
                           currentDirectory: String? = nil, check: Bool = true) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try resolve(arguments[0]))
        process.arguments = Array(arguments.dropFirst())
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice

        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let data = (try? pipe.fileHandleForReading.readToEnd()) ?? Data()
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
