import Foundation
import PostgresNIO
import Schema
import Synchronization
import TestSupport
import Testing
import VolumeClient
@testable import Worker

@Suite struct WorkerRuntimeTests {
    @Test func runsEachOperationAndStoresItsResponse() async throws {
        try await withDatabase { db in
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                return try .completed(["vm_id": "detached-from"])
            }
            let ids = try await (0..<20).asyncMap { _ in try await insertOperation(db, volume: randomVolumeId()) }
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("all completed") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed'") == 20
            }
            try await worker.stop()
            #expect(Set(recorder.all.map(\.id)) == Set(ids))
            #expect(recorder.all.count == 20)
            #expect(try await db.scalar("SELECT response::text FROM volume_operations WHERE id = '\(ids[0])'") == #"{"vm_id": "detached-from"}"#)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operations WHERE claimed_by IS NULL OR started_at IS NULL OR completed_at IS NULL") == 0)
        }
    }

    @Test func aBatchClaimTakesOnlyTheOldestOperationOfEachVolume() async throws {
        try await withDatabase { db in
            let first = try await insertOperation(db, type: "detach", volume: volumeA)
            _ = try await insertOperation(db, type: "delete", volume: volumeA)
            _ = try await insertOperation(db, type: "export", volume: volumeA, vm: otherVM)
            let other = try await insertOperation(db, type: "detach", volume: volumeB)
            let create = try await insertOperation(db, type: "create", volume: nil)
            let rows = try await db.client.query(
                QueueSQL.claim(worker: "w", applianceVMId: nil, limit: 10, leaseMilliseconds: 60_000), logger: testLogger)
            var claimed: [UUID] = []
            for try await row in rows { claimed.append(try ClaimedOperation(row: row).id) }
            #expect(Set(claimed) == [first, other, create])
        }
    }

    @Test func operationsOnOneVolumeRunInCreationOrderOneAtATime() async throws {
        try await withDatabase { db in
            let log = Mutex<[(String, UUID, String)]>([])
            let running = Mutex<Set<String>>([])
            let handler = ClosureHandler { operation, _ in
                let volume = operation.volumeId!
                let overlap = running.withLock { !$0.insert(volume).inserted }
                log.withLock { $0.append((volume, operation.id, overlap ? "overlap" : "start")) }
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...5)))
                running.withLock { _ = $0.remove(volume) }
                return try .completed([String: String]())
            }
            let volumes = (0..<5).map { _ in randomVolumeId() }
            var expected: [String: [UUID]] = [:]
            for round in 0..<8 {
                for volume in volumes {
                    let type = ["detach", "delete", "unexport"][round % 3]
                    expected[volume, default: []].append(try await insertOperation(db, type: type, volume: volume))
                }
            }
            let handlers: [OperationType: any OperationHandler] = ["detach": handler, "delete": handler, "unexport": handler]
            let workers = (0..<3).map { _ in startWorker(db, handlers: handlers, configuration: fastConfiguration(concurrency: 4, batch: 4)) }
            try await eventually("all completed") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'completed'") == 40
            }
            for worker in workers { try await worker.stop() }
            let entries = log.withLock { $0 }
            #expect(!entries.contains { $0.2 == "overlap" })
            for volume in volumes {
                #expect(entries.filter { $0.0 == volume }.map(\.1) == expected[volume])
            }
        }
    }

    @Test func transientFailuresAreRetriedWithBackoffThenSucceed() async throws {
        try await withDatabase { db in
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                if operation.attempts < 3 {
                    throw QueueFailure(code: "cloudstack_unavailable", message: "CloudStack answered 530", isTransient: true)
                }
                return try .completed(["ok": true])
            }
            let id = try await insertOperation(db)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("completed") { try await status(db, id) == "completed" }
            try await worker.stop()
            #expect(recorder.runs(of: id).map(\.attempt) == [1, 2, 3])
            #expect(try await db.scalar("SELECT attempts::text || coalesce(error_code, '-') FROM volume_operations WHERE id = '\(id)'") == "3-")
            let transitions = try await db.query("SELECT from_status || '>' || to_status || ':' || coalesce(detail, '') FROM volume_operation_events WHERE operation_id = '\(id)' AND from_status IS NOT NULL ORDER BY id")
            #expect(transitions == ["pending>executing:", "executing>pending:cloudstack_unavailable", "pending>executing:",
                                    "executing>pending:cloudstack_unavailable", "pending>executing:", "executing>completed:"])
        }
    }

    @Test func transientFailuresStopAtMaxAttempts() async throws {
        try await withDatabase { db in
            let handler = ClosureHandler { _, _ in
                throw QueueFailure(code: "cloudstack_unavailable", message: "CloudStack answered 530; it will be retried", isTransient: true)
            }
            let id = try await insertOperation(db, maxAttempts: 2)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("failed") { try await status(db, id) == "failed" }
            try await worker.stop()
            #expect(try await db.scalar("SELECT error_code FROM volume_operations WHERE id = '\(id)'") == "cloudstack_unavailable")
            #expect(try await db.scalar("SELECT error FROM volume_operations WHERE id = '\(id)'")?.hasPrefix("gave up after 2 attempts") == true)
        }
    }

    @Test func permanentFailuresFailAtOnce() async throws {
        try await withDatabase { db in
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                throw QueueFailure(code: "volume_attached_elsewhere", message: "volume is attached to VM x; detach it first", isTransient: false)
            }
            let id = try await insertOperation(db)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("failed") { try await status(db, id) == "failed" }
            try await worker.stop()
            #expect(recorder.runs(of: id).count == 1)
            #expect(try await db.scalar("SELECT error_code || '|' || error FROM volume_operations WHERE id = '\(id)'")
                    == "volume_attached_elsewhere|volume is attached to VM x; detach it first")
        }
    }

    @Test func malformedRequestsAndUnknownTypesFailClearlyAndTheWorkerGoesOn() async throws {
        try await withDatabase { db in
            struct DetachRequest: Decodable { let force: Bool? ; let timeout_seconds: Int }
            let handler = ClosureHandler { operation, _ in
                _ = try JSONDecoder().decode(DetachRequest.self, from: Data(operation.request.utf8))
                return try .completed([String: String]())
            }
            let wrongType = try await insertOperation(db, volume: randomVolumeId(), request: #"{"timeout_seconds": "soon"}"#)
            let missing = try await insertOperation(db, volume: randomVolumeId(), request: #"{"force": true}"#)
            let noHandler = try await insertOperation(db, type: "cleanup", volume: randomVolumeId())
            let good = try await insertOperation(db, volume: randomVolumeId(), request: #"{"timeout_seconds": 5}"#)
            // On an appliance: only appliance workers claim a cleanup.
            let worker = startWorker(db, handlers: ["detach": handler], configuration: fastConfiguration(appliance: applianceVM))
            try await eventually("all terminal") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status IN ('completed', 'failed')") == 4
            }
            try await worker.stop()
            #expect(try await db.scalar("SELECT error_code || '|' || error FROM volume_operations WHERE id = '\(wrongType)'")?
                .hasPrefix("invalid_request|the request does not have the expected shape: field 'timeout_seconds' must be an integer") == true)
            #expect(try await db.scalar("SELECT error FROM volume_operations WHERE id = '\(missing)'")?.contains("field 'timeout_seconds' is missing") == true)
            #expect(try await db.scalar("SELECT error_code FROM volume_operations WHERE id = '\(noHandler)'") == "unsupported_type")
            #expect(try await status(db, good) == "completed")
            // A permanent failure is not retried.
            #expect(try await db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(wrongType)'") == "1")
        }
    }

    @Test func aCancelledPendingOperationNeverRuns() async throws {
        try await withDatabase { db in
            let recorder = Recorder()
            let handler = ClosureHandler { operation, _ in
                recorder.record(operation)
                return try .completed([String: String]())
            }
            let cancelled = try await insertOperation(db, volume: volumeA)
            let next = try await insertOperation(db, volume: volumeA)
            try await db.query("UPDATE volume_operations SET status = 'cancelled' WHERE id = '\(cancelled)'")
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("next completed") { try await status(db, next) == "completed" }
            try await worker.stop()
            #expect(recorder.runs(of: cancelled).isEmpty)
            #expect(try await status(db, cancelled) == "cancelled")
        }
    }

    @Test func anExecutingOperationIsCancelledBetweenSteps() async throws {
        try await withDatabase { db in
            let steps = Mutex(0)
            let handler = ClosureHandler { _, context in
                for step in 1...400 {
                    try context.checkCancellation()
                    try await context.saveCheckpoint(["step": step])
                    steps.withLock { $0 = step }
                    try await Task.sleep(for: .milliseconds(25))
                }
                return try .completed([String: String]())
            }
            let id = try await insertOperation(db)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("running") { steps.withLock { $0 } >= 2 }
            try await db.query("SELECT volume_operation_cancel('\(id)')")
            try await eventually("cancelled") { try await status(db, id) == "cancelled" }
            try await worker.stop()
            let stoppedAt = steps.withLock { $0 }
            #expect(stoppedAt < 400)
            // The last finished step's checkpoint is kept for the record.
            #expect(try await db.scalar("SELECT checkpoint->>'step' FROM volume_operations WHERE id = '\(id)'") == "\(stoppedAt)")
        }
    }

    @Test func gracefulShutdownFinishesShortWorkAndReleasesLongWorkWithItsCheckpoint() async throws {
        try await withDatabase { db in
            let handler = ClosureHandler { operation, context in
                if operation.request.contains("long") {
                    try await context.saveCheckpoint(["step": "volume attached"])
                    try await Task.sleep(for: .seconds(60))
                } else {
                    try await Task.sleep(for: .milliseconds(300))
                }
                return try .completed([String: String]())
            }
            let short = try await insertOperation(db, volume: randomVolumeId(), request: #"{"kind": "short"}"#)
            let long = try await insertOperation(db, volume: randomVolumeId(), request: #"{"kind": "long"}"#)
            let worker = startWorker(db, handlers: ["detach": handler], configuration: fastConfiguration())
            try await eventually("both claimed") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status = 'executing'") == 2
            }
            let started = ContinuousClock.now
            try await worker.stop()
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(try await status(db, short) == "completed")
            #expect(try await db.scalar("""
                SELECT status || '|' || attempts::text || '|' || coalesce(claimed_by, '-') || '|' || (checkpoint->>'step')
                FROM volume_operations WHERE id = '\(long)'
                """) == "pending|0|-|volume attached")
            #expect(try await db.scalar("SELECT detail FROM volume_operation_events WHERE operation_id = '\(long)' ORDER BY id DESC LIMIT 1") == "released at worker shutdown")
        }
    }

    @Test func theRescuerReturnsExpiredLeasesAndNeverOverwritesACompletion() async throws {
        try await withDatabase { db in
            let expired = try await insertOperation(db, volume: randomVolumeId())
            let finished = try await insertOperation(db, volume: randomVolumeId())
            let exhausted = try await insertOperation(db, volume: randomVolumeId(), maxAttempts: 1)
            try await db.query("""
                UPDATE volume_operations SET \(sqlClaim(worker: "dead-worker", token: "dead-token", lease: "-1 second")),
                       attempts = 1, checkpoint = '{"job_id": "j-1"}'
                """)
            // The dead worker's row that completed just in time stays completed.
            try await db.query("UPDATE volume_operations SET status = 'completed', response = '{}', completed_at = now(), \(sqlProof("dead-token")) WHERE id = '\(finished)'")
            let rescuer = Rescuer(client: db.client, interval: .seconds(1), logger: testLogger)
            #expect(try await rescuer.rescueOnce() == 2)
            #expect(try await db.scalar("SELECT status || '|' || coalesce(claimed_by, '-') || '|' || (checkpoint->>'job_id') FROM volume_operations WHERE id = '\(expired)'") == "pending|-|j-1")
            #expect(try await status(db, finished) == "completed")
            #expect(try await db.scalar("SELECT status || '|' || error_code FROM volume_operations WHERE id = '\(exhausted)'") == "failed|lease_expired")
            #expect(try await db.scalar("SELECT detail FROM volume_operation_events WHERE operation_id = '\(expired)' ORDER BY id DESC LIMIT 1") == "lease expired")
            // A worker that lost its lease cannot complete the row any more.
            let rows = try await db.client.query(QueueSQL.complete(id: expired, token: "dead-token", response: "{}", volumeId: nil), logger: testLogger)
            var changed = 0
            for try await _ in rows { changed += 1 }
            #expect(changed == 0)
            #expect(try await status(db, expired) == "pending")
        }
    }

    @Test func onlyOneRescuerRunsAtATime() async throws {
        try await withDatabase { db in
            for _ in 0..<50 { _ = try await insertOperation(db, volume: randomVolumeId()) }
            try await db.query("UPDATE volume_operations SET \(sqlClaim(worker: "dead", lease: "-1 second")), attempts = 1")
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await Rescuer(client: db.client, interval: .seconds(1), logger: testLogger).rescueOnce() }
                }
                return try await group.reduce(0, +)
            }
            #expect(total == 50)
            #expect(try await db.count("SELECT count(*)::text FROM volume_operation_events WHERE detail = 'lease expired'") == 50)
        }
    }

    @Test func aWorkerThatLostItsLeaseStopsAndWritesNothing() async throws {
        try await withDatabase { db in
            let stopped = Mutex(false)
            let handler = ClosureHandler { _, _ in
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    stopped.withLock { $0 = true }
                    throw error
                }
                return try .completed([String: String]())
            }
            let id = try await insertOperation(db)
            let worker = startWorker(db, handlers: ["detach": handler])
            try await eventually("claimed") { try await status(db, id) == "executing" }
            // Another worker took it over (as after a stall the rescuer would).
            try await withTriggersOff(db, """
                UPDATE volume_operations SET claimed_by = 'other-worker', claim_token = volume_operations_claim_digest('other')
                WHERE id = '\(id)'
                """)
            try await eventually("handler stopped") { stopped.withLock { $0 } }
            try await worker.stop()
            #expect(try await db.scalar("SELECT status || '|' || claimed_by FROM volume_operations WHERE id = '\(id)'") == "executing|other-worker")
        }
    }

    @Test func mappingWritesCommitWithTheTerminalStatusOrNotAtAll() async throws {
        try await withDatabase { db in
            let handler = ClosureHandler { operation, _ in
                let volume = operation.volumeId!
                let fail = operation.request.contains("fail")
                return try .completed(["device_path": "/dev/disk/by-id/virtio-x"]) { connection in
                    try await connection.query("""
                        INSERT INTO device_mappings (volume_id, vm_id, operation_mode, by_id_path)
                        VALUES (\(volume), \(applianceVM), 'appliance', \("/dev/disk/by-id/virtio-" + volume.prefix(8)))
                        """, logger: testLogger)
                    if fail {
                        // Violates the appliance-mapping rule: the whole transaction rolls back.
                        try await connection.query("INSERT INTO device_mappings (volume_id, vm_id, operation_mode) VALUES (\(volume + "x"), 'vm', 'appliance')", logger: testLogger)
                    }
                }
            }
            let good = try await insertOperation(db, type: "attach", volume: volumeA, vm: applianceVM)
            let bad = try await insertOperation(db, type: "attach", volume: volumeB, vm: applianceVM, request: #"{"mode": "fail"}"#, maxAttempts: 1)
            let worker = startWorker(db, handlers: ["attach": handler])
            try await eventually("terminal") {
                try await db.count("SELECT count(*)::text FROM volume_operations WHERE status IN ('completed', 'failed')") == 2
            }
            try await worker.stop()
            #expect(try await status(db, good) == "completed")
            #expect(try await status(db, bad) == "failed")
            #expect(try await db.query("SELECT volume_id FROM device_mappings") == [volumeA])
        }
    }

    @Test func applianceOperationsAreClaimedOnlyByThatAppliancesWorker() async throws {
        try await withDatabase { db in
            try await db.query("INSERT INTO volumed_appliances (vm_id) VALUES ('\(applianceVM)')")
            let toAppliance = try await insertOperation(db, type: "attach", volume: volumeA, vm: applianceVM)
            let toRemote = try await insertOperation(db, type: "attach", volume: volumeB, vm: otherVM)
            let claimedBy = Mutex<[UUID: String]>([:])
            let handler = ClosureHandler { operation, _ in
                claimedBy.withLock { $0[operation.id] = operation.claimedBy }
                return try .completed([String: String]())
            }
            let generic = startWorker(db, handlers: ["attach": handler], configuration: fastConfiguration(name: "generic"))
            try await eventually("remote attach done") { try await status(db, toRemote) == "completed" }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await status(db, toAppliance) == "pending")
            let local = startWorker(db, handlers: ["attach": handler], configuration: fastConfiguration(name: "appliance", appliance: applianceVM))
            try await eventually("appliance attach done") { try await status(db, toAppliance) == "completed" }
            try await generic.stop()
            try await local.stop()
            #expect(claimedBy.withLock { $0 } == [toRemote: "generic", toAppliance: "appliance"])
        }
    }

    @Test func aCleanupIsClaimedOnlyByAnApplianceWorkerAndTheOneItsVMIdNames() async throws {
        try await withDatabase { db in
            let anyAppliance = try await insertOperation(db, type: "cleanup", volume: volumeA)
            let thatAppliance = try await insertOperation(db, type: "cleanup", volume: volumeB, vm: otherVM)
            let claimedBy = Mutex<[UUID: String]>([:])
            let handler = ClosureHandler { operation, _ in
                claimedBy.withLock { $0[operation.id] = operation.claimedBy }
                return try .completed([String: String]())
            }
            let generic = startWorker(db, handlers: ["cleanup": handler], configuration: fastConfiguration(name: "generic"))
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await status(db, anyAppliance) == "pending", "a worker without an appliance has nowhere to put the volume")
            let local = startWorker(db, handlers: ["cleanup": handler], configuration: fastConfiguration(name: "appliance", appliance: applianceVM))
            try await eventually("the cleanup without vm_id done") { try await status(db, anyAppliance) == "completed" }
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await status(db, thatAppliance) == "pending", "its vm_id names another appliance")
            let other = startWorker(db, handlers: ["cleanup": handler], configuration: fastConfiguration(name: "other", appliance: otherVM.uppercased()))
            try await eventually("the cleanup naming the other appliance done") { try await status(db, thatAppliance) == "completed" }
            try await generic.stop()
            try await local.stop()
            try await other.stop()
            #expect(claimedBy.withLock { $0 } == [anyAppliance: "appliance", thatAppliance: "other"])
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
