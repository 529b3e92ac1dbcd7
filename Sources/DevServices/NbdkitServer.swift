import Foundation
import Logging

/// A throwaway `nbdkit` serving a directory on a free loopback port, for tests and the
/// demo: the same setup as production (`nbdkit file dir=DIR`), where every entry of the
/// directory is an export named after it.
///
/// nbdkit runs in the foreground with `--exit-with-parent`, so it cannot outlive the
/// test process even if `stop()` is never reached.
public actor NbdkitServer {
    public struct StartError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public nonisolated let host = "127.0.0.1"
    public nonisolated let port: Int
    public nonisolated let exportDirectory: String
    private let process: ChildProcess
    private let workDirectory: URL
    private let logger: Logger

    private init(process: ChildProcess, port: Int, exportDirectory: String, workDirectory: URL, logger: Logger) {
        self.process = process
        self.port = port
        self.exportDirectory = exportDirectory
        self.workDirectory = workDirectory
        self.logger = logger
    }

    /// Starts nbdkit and returns once it listens (it writes its pid file only then).
    /// Retries on another port if the one picked was taken in the meantime.
    public static func start(
        exportDirectory: String,
        logger: Logger = Logger(label: "volumed.dev.nbdkit")
    ) async throws -> NbdkitServer {
        let executable = try NbdTools.nbdkit()
        var lastError: StartError?
        for _ in 0..<3 {
            do {
                return try await launch(executable: executable, exportDirectory: exportDirectory, port: freeLoopbackPort(), logger: logger)
            } catch let error as StartError {
                lastError = error
                guard error.description.contains("Address already in use") else { throw error }
            }
        }
        throw lastError ?? StartError(description: "nbdkit did not start")
    }

    /// `nbd://127.0.0.1:PORT/NAME`, for nbdcopy and nbdinfo.
    public nonisolated func uri(exportName: String) -> String {
        "nbd://\(host):\(port)/\(exportName)"
    }

    /// Stops nbdkit (SIGTERM) and waits for it to exit.
    public func stop() async {
        process.send(SIGTERM)
        _ = await process.waitForExit()
        try? FileManager.default.removeItem(at: workDirectory)
        logger.debug("nbdkit stopped", metadata: ["port": "\(port)"])
    }

    private static func launch(executable: URL, exportDirectory: String, port: Int, logger: Logger) async throws -> NbdkitServer {
        let workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-nbdkit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        let pidFile = workDirectory.appendingPathComponent("nbdkit.pid")
        let logFile = workDirectory.appendingPathComponent("nbdkit.log")

        let process = try ChildProcess(
            executable: executable,
            arguments: [
                "--foreground", "--exit-with-parent",
                "--pidfile", pidFile.path,
                "--ipaddr", "127.0.0.1", "--port", String(port),
                "file", "dir=\(exportDirectory)",
            ],
            outputPath: logFile.path
        )
        let server = NbdkitServer(process: process, port: port, exportDirectory: exportDirectory, workDirectory: workDirectory, logger: logger)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let pid = try? String(contentsOf: pidFile, encoding: .utf8), !pid.isEmpty {
                logger.debug("nbdkit listening", metadata: ["port": "\(port)", "dir": "\(exportDirectory)"])
                return server
            }
            if process.hasExited { break }
            do {
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                await server.stop() // cancelled while waiting: leave no nbdkit behind
                throw error
            }
        }
        let output = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        await server.stop()
        throw StartError(description: "nbdkit did not start listening on 127.0.0.1:\(port) for dir=\(exportDirectory): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    /// Asks the kernel for an unused loopback port by binding port 0. The port is free
    /// again once the socket closes; `start` retries if someone takes it first.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw StartError(description: "cannot bind a loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
