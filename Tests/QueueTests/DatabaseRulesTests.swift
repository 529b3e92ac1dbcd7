import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing


/// Expects `sql` to be rejected by the database, naming `constraint` (or with `message` in its text).
func expectRejected(_ db: TestDatabase, _ sql: String, constraint: String? = nil, message: String? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await db.query(sql)
        Issue.record("the database accepted: \(sql)", sourceLocation: sourceLocation)
    } catch {
        if let constraint {
            #expect(databaseConstraint(error) == constraint, "\(databaseErrorText(error))", sourceLocation: sourceLocation)
        }
        if let message {
            #expect(databaseErrorText(error).contains(message), "\(databaseErrorText(error))", sourceLocation: sourceLocation)
        }
    }
}

@Suite struct DatabaseRulesTests {
    @Test func malformedInsertsAreRejectedNamingTheRule() async throws {
        try await withDatabase { db in
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id) VALUES ('defragment', '\(volumeA)')",
                                 constraint: "volume_operations_type_known")
            await expectRejected(db, "INSERT INTO volume_operations (type) VALUES ('detach')",
                                 constraint: "volume_operations_volume_id_required")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id) VALUES ('detach', 'vol-1; DROP TABLE x')",
                                 constraint: "volume_operations_volume_id_is_uuid")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id) VALUES ('attach', '\(volumeA)')",
                                 constraint: "volume_operations_vm_id_required")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, request) VALUES ('detach', '\(volumeA)', '[1,2]')",
                                 constraint: "volume_operations_request_is_object")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, request) VALUES ('detach', '\(volumeA)', '{bad json')",
                                 message: "invalid input syntax for type json")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, status) VALUES ('detach', '\(volumeA)', 'bogus')",
                                 message: "must have status pending")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, status, claimed_by, lease_expires_at) VALUES ('detach', '\(volumeA)', 'executing', 'me', now())",
                                 message: "must have status pending")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, max_attempts) VALUES ('detach', '\(volumeA)', 0)",
                                 constraint: "volume_operations_attempts_valid")
            let stored = try await db.count("SELECT count(*)::text FROM volume_operations")
            #expect(stored == 0)
        }
    }

    /// A worker's statements find their rows by claim token alone (migrations/0009): the
    /// database must never let a token's digest stay on a row that is not executing. The guard
    /// triggers keep it so; with them off, the CHECK still does.
    @Test func aClaimTokenStaysOnlyOnAnExecutingRow() async throws {
        try await withDatabase { db in
            let id = try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)') RETURNING id::text")!
            await expectRejected(db, """
                DO $$ BEGIN
                    SET LOCAL session_replication_role = replica;
                    UPDATE volume_operations SET claim_token = repeat('a', 64) WHERE id = '\(id)';
                END $$
                """, constraint: "volume_operations_claim_token_only_while_executing")
            #expect(try await db.scalar("SELECT coalesce(claim_token, 'none') FROM volume_operations WHERE id = '\(id)'") == "none")
        }
    }

    @Test func terminalRowsNeverChangeStatusAgain() async throws {
        try await withDatabase { db in
            let id = try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)') RETURNING id::text")!
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(id)'")
            for status in ["pending", "executing", "completed", "failed"] {
                await expectRejected(db, "UPDATE volume_operations SET status = '\(status)', claimed_by = 'w', lease_expires_at = now(), error = 'e', error_code = 'c' WHERE id = '\(id)'",
                                     message: "already cancelled")
            }
            #expect(try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "cancelled")
            #expect(try await db.scalar("SELECT (completed_at IS NOT NULL)::text FROM volume_operations WHERE id = '\(id)'") == "true")
        }
    }

    @Test func illegalTransitionsAreRejected() async throws {
        try await withDatabase { db in
            let id = try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)') RETURNING id::text")!
            await expectRejected(db, "UPDATE volume_operations SET status = 'completed', completed_at = now() WHERE id = '\(id)'",
                                 message: "cannot go from pending to completed")
            await expectRejected(db, "UPDATE volume_operations SET status = 'bogus' WHERE id = '\(id)'",
                                 message: "cannot go from pending to bogus")
        }
    }

    @Test func atMostOneExecutingOperationPerVolume() async throws {
        try await withDatabase { db in
            try await db.query("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)'), ('delete', '\(volumeA)')")
            try await db.query("UPDATE volume_operations SET \(sqlClaim(worker: "w1")) WHERE type = 'detach'")
            // Even a client that skips the order check cannot run two at once.
            await expectRejected(db, "UPDATE volume_operations SET \(sqlClaim(worker: "w2", token: "t2")) WHERE type = 'delete'")
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'executing'") == 1)
        }
    }

    @Test func aNewerOperationCannotStartBeforeAnOlderOneOnTheSameVolume() async throws {
        try await withDatabase { db in
            try await db.query("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)')")
            try await db.query("INSERT INTO volume_operations (type, volume_id) VALUES ('delete', '\(volumeA)')")
            await expectRejected(db, "UPDATE volume_operations SET \(sqlClaim()) WHERE type = 'delete'",
                                 message: "older unfinished operation on the same volume")
        }
    }

    @Test func everyStatusChangeIsAppendedToTheEvents() async throws {
        try await withDatabase { db in
            let id = try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)') RETURNING id::text")!
            try await db.query("UPDATE volume_operations SET \(sqlClaim(worker: "w1")) WHERE id = '\(id)'")
            try await db.query("UPDATE volume_operations SET lease_expires_at = now() + interval '2 minutes', \(sqlProof()) WHERE id = '\(id)'") // not a status change
            try await db.query("UPDATE volume_operations SET status = 'failed', error = 'boom', error_code = 'x_failed', completed_at = now(), \(sqlProof()) WHERE id = '\(id)'")
            let events = try await db.query("""
                SELECT coalesce(from_status, '-') || '>' || to_status || '@' || coalesce(worker, '-') || ':' || coalesce(detail, '-')
                FROM volume_operation_events WHERE operation_id = '\(id)' ORDER BY id
                """)
            #expect(events == ["->pending@-:detach", "pending>executing@w1:-", "executing>failed@w1:x_failed"])
        }
    }

    @Test func enqueueFunctionDeduplicatesByIdempotencyKey() async throws {
        try await withDatabase { db in
            let first = try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeA)', NULL, '{}', 'key-1')::text")
            let second = try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeA)', NULL, '{}', 'key-1')::text")
            #expect(first != nil && first == second)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 1)
            await expectRejected(db, "SELECT volume_operation_enqueue('delete', '\(volumeA)', NULL, '{}', 'key-1')",
                                 message: "different parameters")
            // A plain INSERT with a used key is rejected by the unique index.
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id, idempotency_key) VALUES ('detach', '\(volumeA)', 'key-1')",
                                 constraint: "volume_operations_idempotency_key")
        }
    }

    @Test func concurrentEnqueuesWithOneKeyMakeOneOperation() async throws {
        try await withDatabase { db in
            let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<12 {
                    group.addTask { try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeA)', NULL, '{}', 'same-key')::text") }
                }
                return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
            }
            #expect(ids.count == 1)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 1)
        }
    }

    @Test func cancelFunctionCancelsPendingAndRequestsExecuting() async throws {
        try await withDatabase { db in
            let pending = try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeA)', NULL)::text")!
            #expect(try await db.scalar("SELECT volume_operation_cancel('\(pending)')") == "cancelled")
            let running = try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeB)', NULL)::text")!
            try await db.query("UPDATE volume_operations SET \(sqlClaim()) WHERE id = '\(running)'")
            // A plain UPDATE to cancelled on an executing row becomes a request, so the volume
            // is never left with a half-done step and a free slot for the next operation.
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(running)'")
            #expect(try await db.scalar("SELECT status || ':' || (cancel_requested_at IS NOT NULL)::text FROM volume_operations WHERE id = '\(running)'") == "executing:true")
            await expectRejected(db, "SELECT volume_operation_cancel('\(UUID())')", message: "no operation")
        }
    }

    @Test func triggersNotifyPendingAndCompletionForPlainSQL() async throws {
        try await withDatabase { db in
            let connection = try await PostgresConnection.connect(configuration: try db.url.connectionConfiguration(), id: 1, logger: testLogger)
            defer { Task { try? await connection.close() } }
            let payloads = try await connection.listen(on: "volume_operation_completed") { completed in
                try await connection.listen(on: "volume_operation_pending") { pending in
                    let id = try await db.scalar("INSERT INTO volume_operations (type, volume_id) VALUES ('detach', '\(volumeA)') RETURNING id::text")!
                    var pendingIterator = pending.makeAsyncIterator()
                    let wake = try await pendingIterator.next()
                    try await db.query("UPDATE volume_operations SET \(sqlClaim()) WHERE id = '\(id)'")
                    try await db.query("UPDATE volume_operations SET status = 'completed', response = '{}', completed_at = now(), \(sqlProof()) WHERE id = '\(id)'")
                    var completedIterator = completed.makeAsyncIterator()
                    let done = try await completedIterator.next()
                    return (id, wake?.payload, done?.payload)
                }
            }
            #expect(payloads.1 == "")
            let json = try JSONSerialization.jsonObject(with: Data((payloads.2 ?? "").utf8)) as? [String: String]
            #expect(json == ["id": payloads.0, "type": "detach", "status": "completed", "volume_id": volumeA])
        }
    }
}
