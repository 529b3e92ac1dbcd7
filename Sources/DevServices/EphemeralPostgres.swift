import Foundation
import Synchronization

/// A throwaway PostgreSQL cluster: initdb into a temporary folder, listening only on a unix
/// socket inside it (or also on a loopback port), stopped and deleted by `stop()` or at exit.
///
/// PostgreSQL refuses to run as root; as root (CI, sessions) every server command runs as the
/// `postgres` user through `runuser`.
public final class EphemeralPostgres: Sendable {
    public let root: String
    public let dataDirectory: String
    public let socketDirectory: String
    public let port: Int
    /// Also listening on 127.0.0.1:`port`.
    public let tcp: Bool
    let binDirectory: String

    /// A libpq URL for `database` over the unix socket.
    public func url(database: String = "postgres") -> String {
        "postgresql://postgres@/\(database)?host=\(socketDirectory)&port=\(port)"
    }

    /// A libpq URL over TCP (only when started with `tcp: true`).
    public func tcpURL(database: String = "postgres") -> String {
        "postgresql://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    private init(root: String, port: Int, tcp: Bool, binDirectory: String) {
        self.root = root
        self.dataDirectory = root + "/data"
        self.socketDirectory = root
        self.port = port
        self.tcp = tcp
        self.binDirectory = binDirectory
    }

    /// Settings for speed in tests: durability is irrelevant for a cluster thrown away.
    public static let testSettings: [String: String] = [
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "max_connections": "500", "shared_buffers": "128MB",
    ]

    public static func start(tcp: Bool = false, settings: [String: String] = testSettings) async throws -> EphemeralPostgres {
        let binDirectory = try findBinDirectory()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("volumed-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if isRoot {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: root)
        }
        let port = tcp ? try FreePort.find() : 5432
        let server = EphemeralPostgres(root: root, port: port, tcp: tcp, binDirectory: binDirectory)
        EphemeralPostgres.registerForExit(server)
        do {
            try await server.initializeAndStart(settings: settings)
        } catch {
            // Cancelled or failed half-way (a server may be running already): leave nothing.
            server.stop()
            throw error
        }
        return server
    }

    private func initializeAndStart(settings: [String: String]) async throws {
        try await runAsPostgres(["\(binDirectory)/initdb", "-D", dataDirectory, "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        var lines = [
            "listen_addresses = '\(tcp ? "127.0.0.1" : "")'",
            "port = \(port)",
            "unix_socket_directories = '\(root)'",
        ]
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) { lines.append("\(name) = '\(value)'") }
        let configuration = lines.joined(separator: "\n") + "\n"
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(configuration.utf8))
        try handle.close()
        try await startServer()
    }

    func startServer() async throws {
        try await runAsPostgres(["\(binDirectory)/pg_ctl", "-D", dataDirectory, "-l", root + "/server.log",
                                 "-w", "-t", "60", "start"])
    }

    /// Stops the server abruptly (as a crash would) and starts it again on the same data.
    public func restart(downtime: Duration = .zero) async throws {
        try await runAsPostgres(["\(binDirectory)/pg_ctl", "-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        if downtime > .zero { try await Task.sleep(for: downtime) }
        try await startServer()
    }

    /// Creates `name` from `template` (a migrated template makes each test's database instant).
    public func createDatabase(_ name: String, template: String = "template1") async throws {
        try await psql("CREATE DATABASE \"\(name)\" TEMPLATE \"\(template)\"")
    }

    /// Runs SQL with psql against `database`, returning its unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") async throws -> String {
        try await ProcessRunner.run(["\(binDirectory)/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                     "-h", socketDirectory, "-p", "\(port)", "-U", "postgres", "-d", database, "-c", sql]).output
    }

    public func stop() {
        EphemeralPostgres.stopNow(dataDirectory: dataDirectory, root: root, binDirectory: binDirectory)
        EphemeralPostgres.unregister(self)
    }

    private func runAsPostgres(_ arguments: [String]) async throws {
        try await ProcessRunner.run(Self.isRoot ? ["runuser", "-u", "postgres", "--"] + arguments : arguments)
    }

    // MARK: Locating the server, stopping at exit

    static var isRoot: Bool { getuid() == 0 }

    static func findBinDirectory() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["PG_BINDIR"] { return configured }
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(base)/\(version)/bin/initdb") {
            return "\(base)/\(version)/bin"
        }
        if let initdb = try? ProcessRunner.resolve("initdb") {
            return URL(fileURLWithPath: initdb).deletingLastPathComponent().path
        }
        throw ProcessRunner.Failure(description: "PostgreSQL server binaries (initdb, pg_ctl) were not found; apt-get install postgresql, or set PG_BINDIR or DATABASE_URL")
    }

    private static let running = Mutex<[(data: String, root: String, bin: String)]>([])

    private static func registerForExit(_ server: EphemeralPostgres) {
        let first = running.withLock { list -> Bool in
            list.append((server.dataDirectory, server.root, server.binDirectory))
            return list.count == 1
        }
        if first {
            atexit {
                let servers = EphemeralPostgres.running.withLock { list -> [(data: String, root: String, bin: String)] in
                    defer { list.removeAll() }
                    return list
                }
                for server in servers { EphemeralPostgres.stopNow(dataDirectory: server.data, root: server.root, binDirectory: server.bin) }
            }
        }
    }

    private static func unregister(_ server: EphemeralPostgres) {
        running.withLock { $0.removeAll { $0.root == server.root } }
    }

    /// Synchronous on purpose: it also runs from `atexit`.
    private static func stopNow(dataDirectory: String, root: String, binDirectory: String) {
        let arguments = ["\(binDirectory)/pg_ctl", "-D", dataDirectory, "-m", "immediate", "-w", "stop"]
        if isRoot {
            ChildProcess.runToCompletion(executable: URL(fileURLWithPath: "/usr/sbin/runuser"),
                                         arguments: ["-u", "postgres", "--"] + arguments)
        } else {
            ChildProcess.runToCompletion(executable: URL(fileURLWithPath: arguments[0]), arguments: Array(arguments.dropFirst()))
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// A loopback TCP port free right now (bound to port 0, read back, closed).
public enum FreePort {
    public static func find() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessRunner.Failure(description: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ProcessRunner.Failure(description: "bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
