import Foundation
import HTTPAPI
import TestSupport
import Testing

/// With a token set, every route but the root liveness check needs it.
@Suite(.serialized) struct AuthTests {
    static let token = "s3cret-token-for-tests"

    @Test func withATokenSetEveryRouteButLivenessNeedsIt() async throws {
        try await APIWorld.with(token: Self.token) { world in
            for path in ["/api/v1/operations", "/api/v1/health", "/metrics", "/api/v1/metrics", "/api/v1/no-such-route"] {
                let missing = try await world.send(.GET, path, authorization: .some(nil))
                #expect(missing.status == 401, "\(path)")
                let error = try missing.apiError()
                #expect(error.code == "UNAUTHORIZED" && error.message.contains("Authorization: Bearer"))
                #expect(missing.headers["www-authenticate"] == "Bearer")

                let wrong = try await world.send(.GET, path, authorization: "Bearer \(Self.token)x")
                #expect(wrong.status == 401, "\(path)")
                #expect(try wrong.apiError().message.contains("wrong"))
                let notBearer = try await world.send(.GET, path, authorization: "Basic \(Self.token)")
                #expect(notBearer.status == 401, "\(path)")
            }
            #expect(try await world.get("/api/v1/operations").status == 200)
            #expect(try await world.get("/metrics").status == 200)
            // A write without the token writes nothing.
            let write = try await world.send(.POST, "/api/v1/volumes/\(volumeA)/detach", authorization: .some(nil))
            #expect(write.status == 401)
            #expect(try await world.operationCount() == 0)
            #expect(try await world.post("/api/v1/volumes/\(volumeA)/detach").status == 201)
            // Liveness stays open for systemd and load balancers.
            #expect(try await world.send(.GET, "/health", authorization: .some(nil)).status == 200)
        }
    }

    @Test("the Bearer scheme name is case-insensitive (RFC 7235); HEAD /health answers without a token (issue 12 item 10)")
    func schemeIsCaseInsensitive() async throws {
        try await APIWorld.with(token: Self.token) { world in
            for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
                let answer = try await world.send(.GET, "/api/v1/operations", authorization: "\(scheme) \(Self.token)")
                #expect(answer.status == 200, "\(scheme)")
            }
            #expect(try await world.send(.GET, "/api/v1/operations", authorization: "bearer  \(Self.token)").status == 200)
            #expect(try await world.send(.GET, "/api/v1/operations", authorization: "bearer\(Self.token)").status == 401)
            #expect(try await world.send(.GET, "/api/v1/operations", authorization: "Bearers \(Self.token)").status == 401)
            let head = try await world.send(.HEAD, "/health", authorization: .some(nil))
            #expect(head.status == 200)
            #expect(head.text.isEmpty)
        }
    }

    @Test func withoutATokenNoAuthorizationIsAsked() async throws {
        try await APIWorld.with { world in
            let answer = try await world.send(.GET, "/api/v1/operations", authorization: .some(nil))
            #expect(answer.status == 200)
        }
    }

    @Test("VOLUMED_HTTP_ADDR must be host:port", arguments: [
        ("127.0.0.1:8090", true), ("0.0.0.0:80", true), ("[::1]:8090", true), ("localhost:9000", true),
        ("8090", false), ("127.0.0.1", false), ("127.0.0.1:http", false), ("127.0.0.1:70000", false), (":8090", false), ("::1:8090", false),
    ])
    func listenAddress(text: String, valid: Bool) throws {
        if valid {
            #expect(throws: Never.self) { try HTTPSettings.parseAddress(text) }
        } else {
            let error = #expect(throws: HTTPSettingsError.self) { try HTTPSettings.parseAddress(text) }
            #expect(error?.message.contains("VOLUMED_HTTP_ADDR must be host:port") == true)
        }
    }

    @Test func anEmptyTokenMeansNoAuthAndAddressesParse() throws {
        let settings = try HTTPSettings(address: "[::1]:8091", token: "")
        #expect(settings.host == "::1" && settings.port == 8091 && settings.token == nil)
    }
}
