import Foundation
import PostgresNIO
import Schema
import Synchronization
import TestSupport
import Testing
@testable import Worker

/// The worker side of the claim token (issue 12).
extension WorkerRuntimeTests {
    /// After a stall, the rescuer may give an operation back and the same worker claim it again
    /// while the first handler still runs (a CloudStack call that does not stop at once). The
    /// new claim waits for that handler to stop; only the new claim writes the result.
    @Test func aReclaimNeverRunsBesideTheEarlierHandlerOfTheSameOperation() async throws {
        try await withDatabase { db in
            let running = Mutex(0)
            let mostAtOnce = Mutex(0)
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                running.withLock { $0 += 1; let now = $0; mostAtOnce.withLock { $0 = max($0, now) } }
                defer { running.withLock { $0 -= 1 } }
                if operation.attempts == 1 {
                    // A step that does not notice cancellation for a while.
                    let end = ContinuousClock.now + .seconds(2)
                    while ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
                    return try .completed(["run": "first"])
                }
                return try .completed(["run": "second"])
            }
            let id = try await insertOperation(db, volume: randomVolumeId())
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("the first run started") { recorder.runs(of: id).count == 1 }
            // What the rescuer does once a stalled worker's lease expires, done at once by hand
            // (the worker's own heartbeat would otherwise keep the lease alive).
            try await withTriggersOff(db, """
                UPDATE volume_operations SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
                       claim_token = NULL, run_after = now() WHERE id = '\(id)'
                """)
            try await eventually("the operation completed") { try await status(db, id) == "completed" }
            try await worker.stop()
            #expect(recorder.runs(of: id).map(\.attempt) == [1, 2])
            #expect(mostAtOnce.withLock { $0 } == 1, "two handlers of one operation ran side by side")
            #expect(try await db.scalar("SELECT response->>'run' FROM volume_operations WHERE id = '\(id)'") == "second")
        }
    }

    /// Should the database refuse the heartbeat statement because of one row, the others are
    /// renewed one by one: their leases never run out, their operations never run twice.
    @Test func oneRowTheDatabaseRefusesDoesNotStallTheHeartbeatOfTheOthers() async throws {
        try await withDatabase { db in
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                try await Task.sleep(for: .seconds(5)) // longer than the 3 s lease
                return try .completed(["ok": true])
            }
            let refused = try await insertOperation(db, volume: randomVolumeId())
            let others = [try await insertOperation(db, volume: randomVolumeId()), try await insertOperation(db, volume: randomVolumeId())]
            // A rule (as a future migration or an operator's trigger might add) that refuses to
            // extend one row's lease.
            try await db.query("""
                CREATE FUNCTION refuse_one_lease() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'this lease may not be extended'; END $$
                """)
            try await db.query("""
                CREATE TRIGGER refuse_one_lease BEFORE UPDATE ON volume_operations FOR EACH ROW
                WHEN (OLD.id = '\(refused)' AND OLD.status = 'executing' AND NEW.status = 'executing'
                      AND NEW.lease_expires_at > OLD.lease_expires_at)
                EXECUTE FUNCTION refuse_one_lease()
                """)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually(timeout: .seconds(30), "the others completed") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed' AND id IN ('\(others[0])', '\(others[1])')") == 2
            }
            try await worker.stop()
            for id in others {
                #expect(recorder.runs(of: id).count == 1)
                #expect(try await db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(id)'") == "1")
            }
        }
    }
}
