import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing
import Worker

/// The rules of migration 0005 (issue 12): only the claim moves an executing row, an INSERT
/// sets only the request columns, terminal rows never change, ids are canonical lower case,
/// and one row cannot fail a heartbeat for all the others.
extension DatabaseRulesTests {
    @Test func onlyTheWorkerHoldingTheClaimTokenMovesAnExecutingRow() async throws {
        try await withDatabase { db in
            let id = try await insertOperation(db, volume: volumeA)
            let claimed = try await db.client.rows(
                QueueSQL.claim(worker: "w1", applianceVMId: nil, limit: 1, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))
            let token = try #require(claimed.first?.claimToken)
            // The row keeps only the token's digest: reading it gives nothing away.
            let stored = try await db.scalar("SELECT claim_token FROM volume_operations WHERE id = '\(id)'")
            #expect(stored != nil && stored != token && stored?.count == 64)

            // Without the token (the claimed_by name is not enough), nobody finishes or requeues it.
            for change in ["status = 'completed', response = '{}'", "status = 'pending', claimed_by = NULL, lease_expires_at = NULL",
                           "status = 'failed', error = 'e', error_code = 'e'", "response = '{\"x\": 1}'",
                           "lease_expires_at = now() + interval '1 hour'", "checkpoint = '{}'",
                           "lease_expires_at = now(), claim_token = '\(stored ?? "")'", "claim_token = 'a-guess'"] {
                await expectRejected(db, "UPDATE volume_operations SET \(change) WHERE id = '\(id)' AND claimed_by = 'w1'",
                                     message: "only that worker, with its claim token, can change it")
            }
            #expect(try await status(db, id) == "executing")

            // Anyone may ask to cancel it, as often as they like: it stays executing for its worker to stop.
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(id)'")
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(id)'")
            #expect(try await db.scalar("SELECT volume_operation_cancel('\(id)')") == "executing")
            #expect(try await db.scalar("SELECT status || ':' || (cancel_requested_at IS NOT NULL)::text FROM volume_operations WHERE id = '\(id)'") == "executing:true")

            // The holder proves its claim and finishes it; the token is gone with the claim.
            let finished = try await db.client.rows(QueueSQL.cancel(id: id, token: token), logger: testLogger)
            #expect(finished.count == 1)
            #expect(try await db.scalar("SELECT status || ':' || coalesce(claim_token, '-') FROM volume_operations WHERE id = '\(id)'") == "cancelled:-")
        }
    }

    @Test func anEarlierClaimOfTheSameOperationChangesNothing() async throws {
        try await withDatabase { db in
            let id = try await insertOperation(db, volume: volumeA)
            let first = try await db.client.rows(
                QueueSQL.claim(worker: "w1", applianceVMId: nil, limit: 1, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))[0]
            // The lease ran out and the rescuer gave the operation back; the same worker claims it again.
            try await withTriggersOff(db, "UPDATE volume_operations SET lease_expires_at = now() - interval '1 second' WHERE id = '\(id)'")
            #expect(try await Rescuer(client: db.client, interval: .seconds(1), logger: testLogger).rescueOnce() == 1)
            let second = try await db.client.rows(
                QueueSQL.claim(worker: "w1", applianceVMId: nil, limit: 1, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))[0]
            #expect(first.claimedBy == second.claimedBy && first.claimToken != second.claimToken)
            // The first claim's statements change zero rows: heartbeat, checkpoint, result.
            #expect(try await db.client.rows(QueueSQL.heartbeat(ids: [id], tokens: [first.claimToken], leaseMilliseconds: 60_000), logger: testLogger).isEmpty)
            #expect(try await db.client.rows(QueueSQL.saveCheckpoint(id: id, token: first.claimToken, checkpoint: "{}"), logger: testLogger).isEmpty)
            #expect(try await db.client.rows(QueueSQL.complete(id: id, token: first.claimToken, response: "{}", volumeId: nil), logger: testLogger).isEmpty)
            #expect(try await db.client.rows(QueueSQL.heartbeat(ids: [id], tokens: [second.claimToken], leaseMilliseconds: 60_000), logger: testLogger).count == 1)
            #expect(try await db.client.rows(QueueSQL.complete(id: id, token: second.claimToken, response: "{}", volumeId: nil), logger: testLogger).count == 1)
        }
    }

    @Test func anInsertSetsOnlyTheRequestColumns() async throws {
        try await withDatabase { db in
            let insert = "INSERT INTO volume_operations (type, volume_id"
            for (column, value) in [("attempts", "3"), ("claimed_by", "'w'"), ("claim_token", "repeat('a', 64)"),
                                    ("lease_expires_at", "now()"), ("started_at", "now()"), ("checkpoint", "'{}'"),
                                    ("response", "'{}'"), ("error", "'e'"), ("error_code", "'e'"),
                                    ("cancel_requested_at", "now()"), ("created_at", "now() - interval '1 day'"),
                                    ("seq", "1")] {
                await expectRejected(db, "\(insert), \(column)) VALUES ('detach', '\(volumeA)', \(value))",
                                     message: "a new operation cannot set \(column) (the queue's bookkeeping)")
            }
            // Identity override is refused too: seq is the queue's creation order.
            await expectRejected(db, "\(insert), seq) OVERRIDING SYSTEM VALUE VALUES ('detach', '\(volumeA)', 1)",
                                 message: "cannot set seq")
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 0)

            let first = try await insertOperation(db, volume: volumeA)
            let second = try await insertOperation(db, volume: volumeA)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations a, volume_operations b WHERE a.id = '\(first)' AND b.id = '\(second)' AND a.seq < b.seq") == 1)
            await expectRejected(db, "UPDATE volume_operations SET seq = 0 WHERE id = '\(second)'", message: "id and seq never change")
        }
    }

    @Test func terminalRowsNeverChangeInAnyColumn() async throws {
        try await withDatabase { db in
            let id = try await insertOperation(db, volume: volumeA)
            try await db.query("UPDATE volume_operations SET \(sqlClaim()) WHERE id = '\(id)'")
            try await db.query("UPDATE volume_operations SET status = 'completed', response = '{\"vm_id\": \"a\"}', completed_at = now(), \(sqlProof()) WHERE id = '\(id)'")
            for change in ["response = '{\"vm_id\": \"b\"}'", "request = '{\"force\": true}'", "error = 'x'",
                           "checkpoint = '{}'", "completed_at = now() - interval '1 day'", "vm_id = '\(otherVM)'",
                           "max_attempts = 9"] {
                await expectRejected(db, "UPDATE volume_operations SET \(change) WHERE id = '\(id)'",
                                     message: "is already completed and never changes again")
            }
            #expect(try await db.scalar("SELECT response::text FROM volume_operations WHERE id = '\(id)'") == #"{"vm_id": "a"}"#)
            // A statement that changes nothing is no change.
            try await db.query("UPDATE volume_operations SET status = status WHERE id = '\(id)'")
        }
    }

    @Test func idsAreStoredInLowerCaseWhateverCaseTheClientSends() async throws {
        try await withDatabase { db in
            let attach = try await db.scalar("""
                INSERT INTO volume_operations (type, volume_id, vm_id) VALUES ('attach', upper('\(volumeA)'), upper('\(otherVM)'))
                RETURNING volume_id || ' ' || vm_id
                """)
            #expect(attach == "\(volumeA) \(otherVM)")
            // The same volume in upper case queues behind it, and cannot run beside it.
            let detach = try await db.scalar("SELECT volume_operation_enqueue('detach', upper('\(volumeA)'), NULL, '{}', 'key-up')::text")
            #expect(try await db.scalar("SELECT volume_operation_enqueue('detach', '\(volumeA)', NULL, '{}', 'key-up')::text") == detach)
            let claimed = try await db.client.rows(
                QueueSQL.claim(worker: "w", applianceVMId: nil, limit: 10, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))
            #expect(claimed.map(\.type) == ["attach"])
            await expectRejected(db, "UPDATE volume_operations SET \(sqlClaim(token: "t2")) WHERE id = '\(detach ?? "")'")
        }
    }

    @Test func deeplyNestedRequestsAreRefusedNamingTheFieldAndTheLimit() async throws {
        try await withDatabase { db in
            let nested = { (depth: Int) in String(repeating: "{\"a\": ", count: depth) + "1" + String(repeating: "}", count: depth) }
            let request = { (depth: Int) in "{\"name\": \"v\", \"metadata\": \(nested(depth))}" }
            await expectRejected(db, "INSERT INTO volume_operations (type, request) VALUES ('create', '\(request(32))')",
                                 constraint: "volume_operations_request_depth", message: "request.metadata nests JSON objects and arrays more than 32 levels deep")
            await expectRejected(db, "SELECT volume_operation_enqueue('create', NULL, NULL, '\(request(510))')",
                                 constraint: "volume_operations_request_depth", message: "request.metadata")
            // Up to the limit is fine (request itself is level 1), as are brackets inside strings.
            _ = try await insertOperation(db, type: "create", volume: nil, request: request(31))
            _ = try await insertOperation(db, type: "create", volume: nil, request: "{\"name\": \"\(String(repeating: "{[", count: 40))\"}")
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations") == 2)
        }
    }

    @Test func oneOutOfOrderRowCannotFailTheHeartbeatOfOtherVolumes() async throws {
        try await withDatabase { db in
            _ = try await insertOperation(db, volume: volumeA)
            _ = try await insertOperation(db, volume: volumeB)
            let claimed = try await db.client.rows(
                QueueSQL.claim(worker: "w", applianceVMId: nil, limit: 10, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))
            #expect(claimed.count == 2)
            // A pending row older than volume A's executing one, as an identity override under
            // 0004 could write (set up here with the rules off, since none can write it now).
            try await withTriggersOff(db, """
                INSERT INTO volume_operations (seq, type, volume_id) VALUES (0, 'delete', '\(volumeA)')
                """)
            let renewed = try await db.client.rows(
                QueueSQL.heartbeat(ids: claimed.map(\.id), tokens: claimed.map(\.claimToken), leaseMilliseconds: 60_000),
                logger: testLogger)
            #expect(renewed.count == 2)
        }
    }
}

/// Migration 0008: a group completion claims the next operations in its own commit.
extension DatabaseRulesTests {
    @Test func aCompletionClaimsAlongOnlyWithItsTokenAndInPerVolumeOrder() async throws {
        try await withDatabase { db in
            let first = try await insertOperation(db, volume: volumeA)
            let second = try await insertOperation(db, volume: volumeA)
            let other = try await insertOperation(db, volume: volumeB)
            let held = try await db.client.rows(
                QueueSQL.claim(worker: "w1", applianceVMId: nil, limit: 1, leaseMilliseconds: 60_000), logger: testLogger)
                .map(ClaimedOperation.init(row:))
            let token = try #require(held.first?.claimToken)
            #expect(held.first?.id == first)

            func completeAndClaim(_ token: String, limit: Int) async throws -> (completed: [UUID], claimed: [ClaimedOperation]) {
                let rows = try await db.client.rows(
                    QueueSQL.completeAndClaim(ids: [first], tokens: [token], responses: ["{\"ok\": true}"], worker: "w1",
                                              applianceVMId: nil, limit: limit, leaseMilliseconds: 60_000),
                    logger: testLogger)
                var result: (completed: [UUID], claimed: [ClaimedOperation]) = ([], [])
                for row in rows {
                    let cells = row.makeRandomAccess()
                    if try cells["completed"].decode(Bool.self) {
                        result.completed.append(try cells["id"].decode(UUID.self))
                    } else {
                        result.claimed.append(try ClaimedOperation(row: row))
                    }
                }
                return result
            }

            // A wrong token completes nothing (zero rows: the lease was lost), and the claim part
            // still keeps the volume's order: the second operation waits for the first.
            let stale = try await completeAndClaim("not-the-token", limit: 5)
            #expect(stale.completed.isEmpty)
            #expect(stale.claimed.map(\.id) == [other])
            #expect(try await status(db, first) == "executing")
            #expect(try await status(db, second) == "pending")

            // With its token: the first completes, and the same commit claims the second.
            let done = try await completeAndClaim(token, limit: 5)
            #expect(done.completed == [first])
            #expect(done.claimed.map(\.id) == [second])
            #expect(done.claimed.allSatisfy { !$0.claimToken.isEmpty && $0.claimedBy == "w1" })
            #expect(try await status(db, first) == "completed")
            #expect(try await status(db, second) == "executing")
            // Audited as separate status changes, written by one transaction (one `now()`).
            #expect(try await db.count("""
                SELECT count(DISTINCT at)::text FROM volume_operation_events
                WHERE (operation_id = '\(first)' AND to_status = 'completed') OR (operation_id = '\(second)' AND to_status = 'executing')
                """) == 1)
        }
    }
}
