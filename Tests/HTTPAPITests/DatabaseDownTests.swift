import AsyncHTTPClient
import DevServices
import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing

/// Issue 12 item 9, with the real executables: a database that is down or refuses us is
/// said in words within seconds, by every command and by the API (503 with Retry-After),
/// never after a minute with a connection pool's internal type.
@Suite(.serialized) struct DatabaseDownTests {
    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    static let nothingListens = "postgres://nobody@127.0.0.1:1/x"

    @Test("every volumed command fails within seconds naming the cause when PostgreSQL cannot be reached")
    func everyCommandFailsFastInWords() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let environment = [
            "DATABASE_URL": Self.nothingListens,
            "CLOUDSTACK_API_URL": "http://127.0.0.1:1/client/api", "CLOUDSTACK_API_KEY": "k", "CLOUDSTACK_SECRET_KEY": "s",
            "VOLUMED_BY_ID_DIR": scratch.byID.path, "VOLUMED_NBD_EXPORT_DIR": scratch.exports.path,
            "VOLUMED_NBD_PORT": "\(try NbdkitServer.freeLoopbackPort())", "VOLUMED_HTTP_ADDR": "127.0.0.1:0",
        ]
        let commands: [[String]] = [
            ["ops"], ["enqueue", "detach", "--volume-id", volumeA], ["wait", UUID().uuidString.lowercased(), "--timeout", "30"],
            ["device", volumeA], ["migrate"], ["prune", "--older-than", "30d"], ["reconcile"], ["worker"], ["serve"],
        ]
        for arguments in commands {
            let log = scratch.root.appendingPathComponent("\(arguments[0]).log").path
            let started = ContinuousClock.now
            let child = try ChildProcess(executable: URL(fileURLWithPath: Self.volumed), arguments: arguments, outputPath: log,
                                         environment: environment)
            let deadline = ContinuousClock.now + .seconds(30)
            while !child.hasExited && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if !child.hasExited { child.send(SIGKILL) }
            let status = await child.waitForExit()
            let elapsed = ContinuousClock.now - started
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(status != 0, "\(arguments): \(output)")
            #expect(elapsed < .seconds(10), "\(arguments) took \(elapsed)")
            #expect(output.contains("cannot connect to PostgreSQL at 127.0.0.1:1: connection refused"), "\(arguments): \(output)")
            #expect(!output.contains("ConnectionPoolError") && !output.contains("circuitBreaker"), "\(arguments): \(output)")
        }
    }

    @Test("volumed serve answers 503 with Retry-After within seconds once PostgreSQL stops")
    func serveAnswers503WhenPostgreSQLStops() async throws {
        let server = try await EphemeralPostgres.start(tcp: true)
        defer { server.stop() }
        try await server.createDatabase("down")
        let urlText = server.tcpURL(database: "down")
        try await PostgresClient.withRunning(try DatabaseURL(urlText), maximumConnections: 2, logger: testLogger) { client in
            _ = try await Migrator(logger: testLogger).migrate(client)
        }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let simulator = try await scratch.startSimulator()
        let nbdkit = try await NbdkitServer.start(exportDirectory: scratch.exports.path)
        let port = try NbdkitServer.freeLoopbackPort()
        let log = scratch.root.appendingPathComponent("serve.log").path
        let serve = try ChildProcess(
            executable: URL(fileURLWithPath: Self.volumed), arguments: ["serve"], outputPath: log,
            environment: scratch.serveEnvironment(databaseURL: urlText, simulator: simulator, nbdPort: nbdkit.port, httpPort: port))
        @Sendable func get(_ path: String) async throws -> (status: Int, retryAfter: String?, body: String) {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(90))
            return (Int(response.status.code), response.headers.first(name: "Retry-After"),
                    String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        do {
            try await eventually("volumed serve to answer") { (try? await get("/api/v1/operations"))?.status == 200 }
            server.stop()
            for path in ["/api/v1/operations", "/api/v1/volumes/\(volumeA)/device", "/api/v1/operations?limit=5"] {
                let started = ContinuousClock.now
                let answer = try await get(path)
                let elapsed = ContinuousClock.now - started
                #expect(answer.status == 503, "\(path): \(answer.body)")
                #expect(answer.retryAfter != nil, "\(path): no Retry-After")
                #expect(elapsed < .seconds(8), "\(path) took \(elapsed)")
                #expect(answer.body.contains("SERVICE_UNAVAILABLE") && answer.body.contains("PostgreSQL"), "\(path): \(answer.body)")
                #expect(!answer.body.contains("ConnectionPoolError"), "\(answer.body)")
            }
        } catch {
            Issue.record("volumed serve log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            serve.send(SIGKILL)
            _ = await serve.waitForExit()
            await nbdkit.stop()
            await simulator.stop()
            throw error
        }
        serve.send(SIGKILL)
        _ = await serve.waitForExit()
        await nbdkit.stop()
        await simulator.stop()
    }
}
