import DevServices
import Foundation

/// A `volumed-bench worker` process (a real worker with synthetic handlers), for tests that
/// need separate processes: exactly-once across processes, kill -9 and rescue.
public final class BenchWorkerProcess: Sendable {
    public let child: ChildProcess
    public let logFile: String
    public let name: String

    /// `volumed-bench` is built beside the test bundle.
    public static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed-bench").path
    }

    public init(databaseURL: String, handler: String, name: String, arguments: [String] = []) async throws {
        self.name = name
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(6)).log").path
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw TimedOut(what: "\(Self.executable) to exist (run swift build --build-tests)")
        }
        child = try ChildProcess(executable: URL(fileURLWithPath: Self.executable),
                                 arguments: ["worker", "--database-url", databaseURL, "--handler", handler, "--name", name] + arguments,
                                 outputPath: logFile)
        let log = logFile
        try await eventually(timeout: .seconds(30), "worker \(name) to start") {
            (try? String(contentsOfFile: log, encoding: .utf8))?.contains("ready") == true
        }
    }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    public func kill9() async {
        child.send(SIGKILL)
        _ = await child.waitForExit()
    }

    public func stop() async -> Int32 {
        child.send(SIGTERM)
        return await child.waitForExit()
    }
}
