import AsyncHTTPClient
import CloudStackSimulator
import DevServices
import Foundation
import NIOCore
import TestSupport
import Testing

/// The real `volumed serve` executable, configured only through its environment (as the
/// systemd unit runs it): it answers on VOLUMED_HTTP_ADDR behind VOLUMED_HTTP_TOKEN, runs
/// operations, and exits 0 on SIGTERM.
@Suite(.serialized) struct ServeProcessTests {
    static var volumed: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("volumed").path
    }

    @Test func volumedServeAnswersRunsAnOperationAndStopsOnSIGTERM() async throws {
        try await withDatabase { db in
            let scratch = try Scratch()
            defer { scratch.remove() }
            let exports = scratch.exports
            let simulator = try await scratch.startSimulator()
            let nbdkit = try await NbdkitServer.start(exportDirectory: exports.path)
            let port = try NbdkitServer.freeLoopbackPort()
            let token = "process-token"
            let log = scratch.root.appendingPathComponent("serve.log").path
            let serve = try ChildProcess(
                executable: URL(fileURLWithPath: Self.volumed), arguments: ["serve"], outputPath: log,
                environment: scratch.serveEnvironment(databaseURL: db.urlText, simulator: simulator, nbdPort: nbdkit.port, httpPort: port)
                    .merging(["VOLUMED_HTTP_TOKEN": token], uniquingKeysWith: { $1 }))
            @Sendable func get(_ path: String, token: String?) async throws -> (Int, String) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 22)))
            }
            do {
                try await eventually("volumed serve to answer /health") { (try? await get("/health", token: nil))?.0 == 200 }
                #expect(try await get("/api/v1/health", token: nil).0 == 401)
                try await eventually("the health check to report healthy") {
                    try await get("/api/v1/health", token: token).1.contains(#""status":"healthy""#)
                }
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/volumes")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.body = .bytes(ByteBuffer(string: createBody()))
                let created = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                #expect(created.status.code == 201)
                try await eventually("the create to complete") {
                    try await db.scalar("SELECT status FROM volume_operations WHERE type = 'create'") == "completed"
                }
                let (metricsStatus, metrics) = try await get("/metrics", token: token)
                #expect(metricsStatus == 200 && metrics.contains(#"volumed_operations_total{type="create",status="completed"} 1"#))
            } catch {
                serve.send(SIGTERM)
                _ = await serve.waitForExit()
                await nbdkit.stop()
                await simulator.stop()
                Issue.record("volumed serve log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                throw error
            }
            serve.send(SIGTERM)
            #expect(await serve.waitForExit() == 0)
            await nbdkit.stop()
            await simulator.stop()
        }
    }

    @Test func aBadListenAddressIsRefusedNamingTheVariable() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("serve-bad-\(UUID().uuidString.prefix(6)).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let serve = try ChildProcess(executable: URL(fileURLWithPath: Self.volumed), arguments: ["serve"], outputPath: log,
                                     environment: ["VOLUMED_HTTP_ADDR": "8090", "DATABASE_URL": "postgres://localhost/none"])
        #expect(await serve.waitForExit() != 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("VOLUMED_HTTP_ADDR must be host:port"), "\(output)")
    }
}
