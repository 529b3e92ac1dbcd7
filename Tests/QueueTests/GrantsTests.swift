import DevServices
import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing
import Worker

/// deploy/grants.sql, applied with psql as docs/operations.md says, gives each role what it
/// needs and nothing more: an orchestrator enqueues, cancels and reads; a worker runs the
/// queue; a dashboard only reads.
@Suite struct GrantsTests {
    static let grantsFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/grants.sql").path

    typealias Roles = (orchestrator: String, worker: String, dashboard: String)

    /// Three fresh roles, granted by deploy/grants.sql with psql as docs/operations.md says.
    static func withGrantedRoles(_ body: @Sendable (TestDatabase, Roles) async throws -> Void) async throws {
        try await withDatabase { db in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let roles = (orchestrator: "orch_\(suffix)", worker: "worker_\(suffix)", dashboard: "dash_\(suffix)")
            for role in [roles.orchestrator, roles.worker, roles.dashboard] {
                try await db.query("CREATE ROLE \(role) LOGIN")
            }
            defer {
                Task { [db] in
                    for role in [roles.orchestrator, roles.worker, roles.dashboard] {
                        _ = try? await db.query("DROP OWNED BY \(role); DROP ROLE \(role)")
                    }
                }
            }
            try await ProcessRunner.run([
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "orchestrator=\(roles.orchestrator)",
                "-v", "worker=\(roles.worker)", "-v", "dashboard=\(roles.dashboard)",
                "-f", Self.grantsFile, db.urlText,
            ])
            try await body(db, roles)
        }
    }

    @Test func eachRoleCanDoItsJobAndNoMore() async throws {
        try await Self.withGrantedRoles { db, roles in

            // The orchestrator: enqueue (plain INSERT and the function), cancel both ways, read.
            let pendingId = try await Self.asRole(roles.orchestrator, db) { orchestrator in
                try await orchestrator.query("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', gen_random_uuid()::text)")
                let cancelled = try await orchestrator.scalar(
                    "SELECT volume_operation_cancel(volume_operation_enqueue('detach', gen_random_uuid()::text, NULL))")
                #expect(cancelled == "cancelled")
                let toCancel = try await orchestrator.scalar(
                    "SELECT volume_operation_enqueue('detach', gen_random_uuid()::text, NULL)::text")
                let plainCancel = try await orchestrator.scalar(
                    "UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(toCancel ?? "")' RETURNING status")
                #expect(plainCancel == "cancelled")
                #expect(try await orchestrator.count("SELECT count(*)::text FROM volume_operation_stats") > 0)
                _ = try await orchestrator.query("SELECT count(*) FROM volume_inventory")
                await Self.expectDenied {
                    try await orchestrator.query("UPDATE volume_operations SET request = '{}'")
                }
                await Self.expectDenied { try await orchestrator.query("DELETE FROM volume_operations") }
                await Self.expectDenied { try await orchestrator.query("DELETE FROM device_mappings") }
                return try await orchestrator.scalar(
                    "SELECT id::text FROM volume_operations WHERE status = 'pending' LIMIT 1")
            }

            // The worker: its whole runtime (schema check, claim, heartbeat, rescuer, completion).
            try await Self.asRole(roles.worker, db) { worker in
                try await Migrator(logger: testLogger).checkUpToDate(worker.client)
                let running = startWorker(worker, handlers: ["detach": ClosureHandler { _, _ in try .completed(["ok": true]) }])
                try await eventually("the orchestrator's operation completed") {
                    try await worker.scalar("SELECT status FROM volume_operations WHERE id = '\(pendingId ?? "")'") == "completed"
                }
                try await running.stop()
                await Self.expectDenied { try await worker.query("DROP TABLE volume_operations") }
            }

            // The dashboard: reads only.
            try await Self.asRole(roles.dashboard, db) { dashboard in
                #expect(try await dashboard.count("SELECT count(*)::text FROM volume_operations_stuck") == 0)
                _ = try await dashboard.query("SELECT count(*) FROM volume_inventory")
                await Self.expectDenied {
                    try await dashboard.query("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', gen_random_uuid()::text)")
                }
                await Self.expectDenied { try await dashboard.query("SELECT volume_operation_cancel(gen_random_uuid())") }
            }
        }
    }

    /// The rules of migration 0005, for each role as granted: only the claim token moves an
    /// executing row, an INSERT sets only the request columns (ids stored in lower case,
    /// request nested at most 32 deep), terminal rows never change.
    @Test func theDatabaseRulesHoldForEveryRole() async throws {
        try await Self.withGrantedRoles { db, roles in
            let target = try await insertOperation(db, volume: randomVolumeId())
            let token = try await Self.asRole(roles.worker, db) { worker in
                try await worker.client.rows(
                    QueueSQL.claim(worker: "w", applianceVMId: nil, limit: 1, leaseMilliseconds: 60_000), logger: testLogger)
                    .map(ClaimedOperation.init(row:)).first?.claimToken
            }
            let claimToken = try #require(token)
            let rule = "only that worker, with its claim token, can change it"
            let deep = "{\"metadata\": " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}"

            try await Self.asRole(roles.orchestrator, db) { (orchestrator) async throws in
                // It cannot finish or requeue the worker's operation, nor prove a claim.
                await expectRejected(orchestrator, "UPDATE volume_operations SET status = 'completed' WHERE id = '\(target)'", message: rule)
                await expectRejected(orchestrator, "UPDATE volume_operations SET status = 'pending' WHERE id = '\(target)'", message: rule)
                await expectRejected(orchestrator, "UPDATE volume_operations SET status = 'failed' WHERE id = '\(target)'", message: rule)
                await Self.expectDenied {
                    try await orchestrator.query("UPDATE volume_operations SET claim_token = '\(claimToken)', status = 'completed' WHERE id = '\(target)'")
                }
                // It can ask to cancel it.
                #expect(try await orchestrator.scalar(
                    "UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(target)' RETURNING status") == "executing")
                // Its inserts set only the request columns; ids are stored in lower case.
                await expectRejected(orchestrator,
                    "INSERT INTO volume_operations (type, volume_id, seq) OVERRIDING SYSTEM VALUE VALUES ('detach', gen_random_uuid()::text, 1)",
                    message: "cannot set seq")
                await expectRejected(orchestrator,
                    "INSERT INTO volume_operations (type, volume_id, checkpoint) VALUES ('detach', gen_random_uuid()::text, '{}')",
                    message: "cannot set checkpoint")
                let upper = UUID().uuidString.uppercased()
                #expect(try await orchestrator.scalar(
                    "INSERT INTO volume_operations (type, volume_id, run_after) VALUES ('detach', '\(upper)', now() + interval '1 hour') RETURNING volume_id")
                    == upper.lowercased())
                await expectRejected(orchestrator,
                    "INSERT INTO volume_operations (type, request) VALUES ('create', '\(deep)')", constraint: "volume_operations_request_depth")
                await expectRejected(orchestrator,
                    "SELECT volume_operation_enqueue('create', NULL, NULL, '\(deep)')", constraint: "volume_operations_request_depth")
            }

            try await Self.asRole(roles.worker, db) { (worker) async throws in
                // Without the token, a worker role is refused too; with it, the cancel is honoured.
                await expectRejected(worker, "UPDATE volume_operations SET status = 'completed', response = '{}', lease_expires_at = NULL WHERE id = '\(target)'", message: rule)
                #expect(try await worker.client.rows(QueueSQL.cancel(id: target, token: claimToken), logger: testLogger).count == 1)
                await expectRejected(worker, "UPDATE volume_operations SET response = '{}' WHERE id = '\(target)'", message: "already cancelled and never changes again")
                await expectRejected(worker,
                    "INSERT INTO volume_operations (type, volume_id, seq) OVERRIDING SYSTEM VALUE VALUES ('detach', gen_random_uuid()::text, 1)",
                    message: "cannot set seq")
                await expectRejected(worker, "UPDATE volume_operations SET seq = 1 WHERE status = 'pending'", message: "id and seq never change")
            }

            try await Self.asRole(roles.dashboard, db) { (dashboard) async throws in
                #expect(try await dashboard.scalar("SELECT claim_token FROM volume_operations WHERE id = '\(target)'") == nil)
                await Self.expectDenied { try await dashboard.query("UPDATE volume_operations SET status = 'cancelled'") }
            }
            #expect(try await status(db, target) == "cancelled")
        }
    }

    /// `body` fails for lack of a privilege (SQLSTATE 42501), not for any other reason.
    static func expectDenied(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("expected permission denied, but the statement succeeded", sourceLocation: sourceLocation)
        } catch let error as PSQLError {
            #expect(error.serverInfo?[.sqlState] == "42501", "\(String(reflecting: error))", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected permission denied, got \(error)", sourceLocation: sourceLocation)
        }
    }

    /// `body` with a pool connected to the test database as `role` (trust authentication
    /// on the throwaway cluster).
    static func asRole<T: Sendable>(_ role: String, _ db: TestDatabase,
                                    _ body: @Sendable (TestDatabase) async throws -> T) async throws -> T {
        var components = try #require(URLComponents(string: db.urlText))
        components.user = role
        components.password = nil
        let text = components.string ?? db.urlText
        let url = try DatabaseURL(text)
        return try await PostgresClient.withRunning(url, maximumConnections: 6, logger: testLogger) { client in
            try await body(TestDatabase(urlText: text, url: url, client: client))
        }
    }
}

extension GrantsTests {
    /// An upgrade to 0007 needs no new grant: roles granted at 0006 insert (whose rules read the
    /// operation-types table) and claim (which routes by it) right after the migration.
    @Test func rolesGrantedBefore0007KeepWorkingAfterIt() async throws {
        let text = try await TestCluster.shared.emptyDatabase()
        let url = try DatabaseURL(text)
        try await PostgresClient.withRunning(url, maximumConnections: 4, logger: testLogger) { client in
            let db = TestDatabase(urlText: text, url: url, client: client)
            try await Migrator(migrations: Array(Migration.embedded.prefix(6)), logger: testLogger).migrate(client)
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let (orchestrator, worker) = ("orch_\(suffix)", "worker_\(suffix)")
            for role in [orchestrator, worker] { try await db.query("CREATE ROLE \(role) LOGIN") }
            // deploy/grants.sql as it was at 0006: the same file without the table 0007 adds.
            let grants = try String(contentsOfFile: Self.grantsFile, encoding: .utf8)
                .replacingOccurrences(of: " volume_operation_types,", with: "")
            #expect(!grants.contains("volume_operation_types"))
            let oldGrants = FileManager.default.temporaryDirectory.appendingPathComponent("grants-0006-\(suffix).sql").path
            try grants.write(toFile: oldGrants, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: oldGrants) }
            try await ProcessRunner.run([
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "orchestrator=\(orchestrator)",
                "-v", "worker=\(worker)", "-v", "dashboard=\(worker)", "-f", oldGrants, text,
            ])
            try await Migrator(logger: testLogger).migrate(client)

            _ = try await Self.asRole(orchestrator, db) { orchestrator in
                try await orchestrator.query("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', gen_random_uuid()::text)")
            }
            let claimed = try await Self.asRole(worker, db) { worker in
                try await worker.query("SELECT id FROM volume_operations_claim_with_token('w', NULL, 1, 60000)").count
            }
            #expect(claimed == 1)
        }
    }
}
