import DevServices
import Foundation

/// Worker processes of this executable, started and stopped by a benchmark or test.
struct WorkerProcesses {
    let children: [ChildProcess]
    let logFiles: [String]

    static func start(count: Int, arguments: [String]) async throws -> WorkerProcesses {
        var children: [ChildProcess] = []
        var logs: [String] = []
        for index in 0..<count {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-bench-worker-\(UUID().uuidString.prefix(8))-\(index).log").path
            children.append(try ChildProcess(executable: URL(fileURLWithPath: ownExecutable()),
                                             arguments: ["worker"] + arguments, outputPath: log))
            logs.append(log)
        }
        let processes = WorkerProcesses(children: children, logFiles: logs)
        try await processes.waitUntilReady()
        return processes
    }

    private func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let ready = logFiles.allSatisfy { (try? String(contentsOfFile: $0, encoding: .utf8))?.contains("ready") == true }
            if ready { return }
            if let dead = children.first(where: \.hasExited) {
                throw BenchError("a worker process exited early: \(log(of: dead))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("worker processes did not start within 30 s")
    }

    func log(of child: ChildProcess) -> String {
        guard let index = children.firstIndex(where: { $0 === child }) else { return "" }
        return (try? String(contentsOfFile: logFiles[index], encoding: .utf8)) ?? ""
    }

    func stop() async {
        for child in children { child.send(SIGTERM) }
        for child in children { _ = await child.waitForExit() }
        for log in logFiles { try? FileManager.default.removeItem(atPath: log) }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
