import CloudStackSimulator
import Foundation
import Glibc
@testable import HTTPAPI
import Logging
import NIOHTTP1
import PostgresNIO
import TestSupport
import Testing

/// Issue 12 (items 8 and 10): what a hostile or careless client, a monitor in a loop, or a
/// row nobody can encode any more does to the API.
@Suite(.serialized) struct HardeningRouteTests {
    /// `{"a":{"a":…1…}}`, `levels` objects deep.
    static func nested(_ levels: Int) -> String {
        String(repeating: #"{"a":"#, count: levels) + "1" + String(repeating: "}", count: levels)
    }

    @Test("metadata nested past the limit is a 400 naming the field and the limit; nothing is enqueued")
    func deepMetadataIsRefused() async throws {
        try await APIWorld.with { world in
            for levels in [JSONNesting.maximumDepth + 1, 510, 5000] {
                let body = #"{"name":"d","size":1073741824,"disk_offering_id":"\#(offering)","zone_id":"\#(zone)","metadata":\#(Self.nested(levels))}"#
                let answer = try await world.post("/api/v1/volumes", body)
                #expect(answer.status == 400, "\(levels): \(answer.text)")
                let error = try answer.apiError()
                #expect(error.message.contains("field 'metadata' is nested \(levels) levels deep"), "\(error.message)")
                #expect(error.message.contains("at most \(JSONNesting.maximumDepth) levels"), "\(error.message)")
                #expect(error.details["field"] as? String == "metadata")
            }
            // At the limit it is accepted, and reads back as it was sent.
            let fine = #"{"name":"d","size":1073741824,"disk_offering_id":"\#(offering)","zone_id":"\#(zone)","metadata":\#(Self.nested(JSONNesting.maximumDepth))}"#
            let created = try await world.post("/api/v1/volumes", fine)
            #expect(created.status == 201, "\(created.text)")
            #expect(try await world.operationCount() == 1)
        }
    }

    @Test("a stored row the encoder refuses is a 500 naming the row, never 200 null")
    func unencodableRowIsA500NamingIt() async throws {
        try await APIWorld.with { world in
            let good = try await world.post("/api/v1/volumes/\(volumeA)/detach")
            #expect(good.status == 201)
            // What an orchestrator's plain INSERT could store before migration 0005 set a depth
            // limit (a row from then is still in the table): 510 levels, written with the
            // triggers off, as the database no longer accepts it.
            let id = UUID().uuidString.lowercased()
            try await withTriggersOff(world.db, """
                INSERT INTO volume_operations (id, seq, type, volume_id, request)
                VALUES ('\(id)', nextval('volume_operations_seq'), 'detach', '\(volumeB)', '{"metadata": \(Self.nested(510))}')
                """)
            for path in ["/api/v1/operations/\(id)", "/api/v1/operations", "/api/v1/volumes/\(volumeB)"] {
                let answer = try await world.get(path)
                #expect(answer.status == 500, "\(path): \(answer.text.prefix(300))")
                #expect(answer.text != "null")
                let error = try answer.apiError()
                #expect(error.code == "INTERNAL_ERROR")
                #expect(error.message.contains("operation \(id)") || error.message.contains("volume \(volumeB)"), "\(path): \(error.message)")
            }
            // Other rows still read.
            #expect(try await world.get("/api/v1/operations?volume_id=\(volumeA)").status == 200)
        }
    }

    @Test("JSONResponse answers 500 naming the subject when the encoder refuses the value")
    func responseOfAnUnencodableValue() throws {
        var value = JSONValue.int(1)
        for _ in 0..<600 { value = .object(["a": value]) }
        let response = JSONResponse.make(value, subject: "operation 42")
        #expect(response.status == .internalServerError)
        let list = JSONResponse.array([(.string("fine"), "operation 1"), (value, "operation 2")])
        #expect(list.status == .internalServerError)
        #expect(JSONNesting.deepest(in: Array(#"{"x": "{[{[", "metadata": {"a": [[1]]}}"#.utf8))
            == JSONNesting.Deepest(depth: 3, field: "metadata"))
    }

    @Test("force-sync while another reconcile runs is a 409; its report's dates are ISO 8601")
    func forceSyncConflictAndDates() async throws {
        try await APIWorld.with(.serve) { world in
            let answer = try await world.post("/api/v1/admin/force-sync")
            #expect(answer.status == 200, "\(answer.text)")
            let report = try #require(try answer.object()["report"] as? [String: Any])
            #expect(isRFC3339(report["started_at"]) && isRFC3339(report["finished_at"]), "\(report)")

            // Hold the reconcile lock, as a worker's periodic pass or `volumed reconcile` does.
            let holder = Task {
                try await world.db.client.withTransaction(logger: testLogger) { connection in
                    _ = try await connection.query("SELECT pg_advisory_xact_lock(\(Int64(0x766F_6C75_6D65_6403)))", logger: testLogger)
                    try await Task.sleep(for: .seconds(3))
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            let busy = try await world.post("/api/v1/admin/force-sync")
            #expect(busy.status == 409, "\(busy.text)")
            let error = try busy.apiError()
            #expect(error.code == "CONFLICT" && error.message.contains("another reconcile is running"), "\(error.message)")
            try await holder.value
        }
    }

    @Test("/api/v1/health reuses its CloudStack answer for a few seconds, then asks again")
    func healthProbeIsCached() async throws {
        try await APIWorld.with { world in
            let first = try await world.get("/api/v1/health").object()
            #expect(first["cloudstack_health"] as? String == "healthy")
            await world.simulator.setFaults(SimulatorFaults(failRate: 1))
            // A loop of health requests does not reach CloudStack: the answer is the cached one.
            for _ in 0..<5 {
                #expect(try await world.get("/api/v1/health").object()["cloudstack_health"] as? String == "healthy")
            }
            try await eventually(timeout: .seconds(15), "the health check to ask CloudStack again") {
                try await world.get("/api/v1/health").object()["cloudstack_health"] as? String == "unhealthy"
            }
        }
    }

    @Test("every request gets one access log line at info, without its query or token")
    func accessLog() async throws {
        let recorder = LogRecorder()
        try await APIWorld.with(token: "access-log-token", apiLogger: recorder.logger()) { world in
            let listed = try await world.get("/api/v1/operations?volume_id=\(volumeA)")
            let refused = try await world.send(.GET, "/api/v1/operations", authorization: .some(nil))
            let unknown = try await world.get("/api/v1/no-such-route")
            #expect(listed.status == 200 && refused.status == 401 && unknown.status == 404)
        }
        let lines = recorder.all.filter { $0.contains("http request") }
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.allSatisfy { $0.hasPrefix("info ") }, "\(lines)")
        #expect(lines.contains { $0.contains("/api/v1/operations") && $0.contains("200") })
        #expect(lines.contains { $0.contains("401") })
        #expect(lines.contains { $0.contains("/api/v1/no-such-route") && $0.contains("404") })
        #expect(!recorder.all.joined().contains("access-log-token"))
        #expect(!lines.joined().contains(volumeA))
    }

    @Test("a client that never finishes its headers is disconnected after the header read timeout")
    func headerReadTimeout() async throws {
        try await APIWorld.with(headerReadTimeout: .seconds(1)) { world in
            let port = try #require(Int(world.baseURL.split(separator: ":").last ?? ""))
            let started = ContinuousClock.now
            let closed = try await Task.detached { try SlowClient.trickle(port: port, for: .seconds(8)) }.value
            #expect(closed, "the server kept a connection with unfinished headers open for 8 s")
            #expect(ContinuousClock.now - started < .seconds(5))
            // Whole requests still work.
            #expect(try await world.get("/health").status == 200)
        }
    }
}

/// A client sending a request line and one header byte at a time, never the blank line.
enum SlowClient {
    /// True when the server closed the connection before `duration` passed.
    static func trickle(port: Int, for duration: Duration) throws -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw APIWorldError(description: "connect: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let head = Array("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        _ = head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let deadline = ContinuousClock.now + duration
        var buffer = [UInt8](repeating: 0, count: 256)
        while ContinuousClock.now < deadline {
            var byte = UInt8(ascii: "a")
            if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) < 0 { return true }
            let got = recv(fd, &buffer, buffer.count, 0)
            if got == 0 { return true }
            if got < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return true }
        }
        return false
    }
}
