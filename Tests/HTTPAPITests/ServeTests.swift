import CloudStackSimulator
import Foundation
import TestSupport
import Testing

/// `volumed serve`'s ServiceGroup built in-process (the same `WorkerServices` +
/// `ServeServices` the command runs): operations enqueued through the API run through the
/// real worker against the simulator, nbdkit and the by-id directory.
@Suite(.serialized) struct ServeTests {
    /// Creates a 1 GiB volume and attaches it to the appliance, through the API; returns the
    /// volume id and the attach operation's id.
    static func createAndAttach(_ world: APIWorld) async throws -> (volume: String, attach: String) {
        let create = try await world.post("/api/v1/volumes", createBody()).object()
        let createId = try #require(create["id"] as? String)
        #expect(try await world.finished(createId) == "completed")
        let volume = try #require(try await world.db.scalar("SELECT volume_id FROM volume_operations WHERE id = '\(createId)'"))
        let attach = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(world.appliance)"}"#).object()
        let attachId = try #require(attach["id"] as? String)
        let attachStatus = try await world.finished(attachId)
        let attachError = try await world.db.scalar("SELECT error FROM volume_operations WHERE id = '\(attachId)'")
        #expect(attachStatus == "completed", "\(attachError ?? "")")
        return (volume, attachId)
    }

    // MARK: The original daemon's verification commands

    /// `curl -s http://localhost:8090/api/v1/health`
    @Test func healthAnswersWithEveryDependencyReallyChecked() async throws {
        try await APIWorld.with(.serve) { world in
            try await eventually("the worker to start claiming") {
                (try await world.get("/api/v1/health").object()["details"] as? [String: Any])?["worker"] as? String == "running"
            }
            let answer = try await world.get("/api/v1/health")
            #expect(answer.status == 200)
            let health = try answer.object()
            #expect(Set(health.keys) == ["status", "timestamp", "cloudstack_health", "database_health", "device_monitor", "details"])
            #expect(health["status"] as? String == "healthy", "\(answer.text)")
            #expect(health["cloudstack_health"] as? String == "healthy" && health["database_health"] as? String == "healthy")
            #expect(health["device_monitor"] as? String == "healthy" && isRFC3339(health["timestamp"]))
            // The original's Go client decodes details as map[string]string.
            let details = try #require(health["details"] as? [String: Any])
            #expect(details.values.allSatisfy { $0 is String }, "\(details)")
            #expect(details["nbd_server"] as? String == "healthy")
            #expect(details["by_id_dir"] as? String == world.byIDDirectory.path)
            #expect(details["active_operations"] as? String == "0")

            // CloudStack failing: degraded, not down (requests are still queued and answered).
            // (The CloudStack check is reused for a few seconds: the change shows within them.)
            await world.simulator.setFaults(SimulatorFaults(failRate: 1))
            try await eventually(timeout: .seconds(15), "the health check to see CloudStack failing") {
                try await world.get("/api/v1/health").object()["cloudstack_health"] as? String == "unhealthy"
            }
            let degraded = try await world.get("/api/v1/health")
            #expect(degraded.status == 200)
            let degradedHealth = try degraded.object()
            #expect(degradedHealth["status"] as? String == "degraded" && degradedHealth["cloudstack_health"] as? String == "unhealthy")
            #expect(((degradedHealth["details"] as? [String: Any])?["cloudstack"] as? String)?.contains("cloudstack_internal_error") == true)
            await world.simulator.setFaults(SimulatorFaults())

            // The root liveness answer touches nothing.
            let live = try await world.get("/health")
            let liveStatus = try live.object()["status"] as? String
            #expect(live.status == 200 && liveStatus == "alive")
        }
    }

    /// `curl -s http://localhost:8090/api/v1/volumes/{id}/device`
    @Test func aVolumeAttachedThroughTheAPIShowsItsByIdDevice() async throws {
        try await APIWorld.with(.serve) { world in
            let (volume, _) = try await Self.createAndAttach(world)
            let answer = try await world.get("/api/v1/volumes/\(volume)/device")
            #expect(answer.status == 200, "\(answer.text)")
            let device = try answer.object()
            #expect(deviceKeys.isSubset(of: Set(device.keys)))
            let byId = try #require(world.simulator.byIDLinkPath(forVolumeID: volume))
            #expect(device["device_path"] as? String == byId)
            #expect(device["operation_mode"] as? String == "oma" && device["vm_id"] as? String == world.appliance)
            #expect(device["volume_uuid"] as? String == volume && device["linux_state"] as? String == "detected")
            #expect((device["size"] as? NSNumber)?.int64Value == 1 << 30)
        }
    }

    /// `curl -s http://localhost:8090/api/v1/operations/{id}`
    @Test func aFinishedOperationShowsItsResponseAndCompletion() async throws {
        try await APIWorld.with(.serve) { world in
            let (volume, attachId) = try await Self.createAndAttach(world)
            let answer = try await world.get("/api/v1/operations/\(attachId)")
            #expect(answer.status == 200)
            let operation = try answer.object()
            #expect(operationKeys.isSubset(of: Set(operation.keys)))
            #expect(operation["status"] as? String == "completed" && operation["volume_id"] as? String == volume)
            #expect(isRFC3339(operation["completed_at"]) && operation["error"] is NSNull)
            let response = try #require(operation["response"] as? [String: Any])
            #expect(response["device_path"] as? String == world.simulator.byIDLinkPath(forVolumeID: volume))
            #expect(response["operation_mode"] as? String == "appliance")
        }
    }

    // MARK: Metrics

    @Test func prometheusTextHasTheQueueCloudStackAndByIdMetricsAfterOperationsRan() async throws {
        try await APIWorld.with(.serve) { world in
            _ = try await Self.createAndAttach(world)
            // A transient CloudStack failure: retried, counted by command and code.
            await world.simulator.setFaults(SimulatorFaults(failRate: 1))
            let create = try await world.post("/api/v1/volumes", createBody(name: "retried")).object()
            let id = try #require(create["id"] as? String)
            try await eventually("the create to be retried") {
                try await world.db.scalar("SELECT error_code FROM volume_operations WHERE id = '\(id)'") == "cloudstack_internal_error"
            }
            await world.simulator.setFaults(SimulatorFaults())
            #expect(try await world.finished(id) == "completed")

            let scrape = try await world.get("/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = scrape.text
            for expected in [
                #"volumed_operations_total{type="create",status="completed"}"#,
                #"volumed_operations_total{type="attach",status="completed"}"#,
                #"volumed_operation_duration_seconds_bucket{type="attach",le="#,
                "volumed_claim_duration_seconds_count",
                "volumed_claimed_total",
                #"volumed_retries_total{type="create",error_code="cloudstack_internal_error"}"#,
                "volumed_rescued_total ",
                #"volumed_queue_depth{status="pending"} 0"#,
                #"volumed_queue_depth{status="executing"} 0"#,
                #"volumed_cloudstack_request_duration_seconds_count{command="attachVolume"}"#,
                #"volumed_cloudstack_request_duration_seconds_count{command="createVolume"}"#,
                #"error_code="cloudstack_internal_error"}"#,
                #"volumed_by_id_wait_seconds_count{kind="appear",outcome="found"}"#,
            ] {
                #expect(text.contains(expected), "missing \(expected)")
            }
            #expect(text.contains("volumed_cloudstack_errors_total{command="))

            // The original's JSON summary, read from SQL.
            let summary = try await world.get("/api/v1/metrics").object()
            #expect((summary["total_operations"] as? NSNumber)?.intValue == 3)
            #expect(((summary["operations_by_type"] as? [String: Any])?["create"] as? NSNumber)?.intValue == 2)
            #expect(((summary["operations_by_status"] as? [String: Any])?["completed"] as? NSNumber)?.intValue == 3)
            #expect((summary["active_mappings"] as? NSNumber)?.intValue == 1)
            #expect(((summary["average_response_time_ms"] as? NSNumber)?.doubleValue ?? 0) > 0)
            #expect((summary["error_rate_percent"] as? NSNumber)?.doubleValue == 0)
            let details = try #require(summary["details"] as? [String: Any])
            #expect((details["durations"] as? [[String: Any]])?.contains { $0["window"] as? String == "all_time" && $0["type"] as? String == "attach" } == true)
        }
    }

    // MARK: Exports and reconciliation through the worker

    /// As the original daemon: `POST /exports` answers once the export exists, `201` with the
    /// export object; `DELETE /exports/{volume_id}` once it is gone, `200` `{message}`.
    @Test func anExportWithoutAJobIdRunsAndIsReadBack() async throws {
        try await APIWorld.with(.serve) { world in
            let (volume, _) = try await Self.createAndAttach(world)
            let export = try await world.post("/api/v1/exports", #"{"volume_id": "\#(volume)", "vm_id": "\#(otherVM)", "vm_name": "pgtest1", "disk_number": 0}"#)
            #expect(export.status == 201, "\(export.text)")
            let created = try export.object()
            #expect(created["export_name"] as? String == "migration-vol-\(volume)" && created["status"] as? String == "active", "\(export.text)")
            #expect((created["port"] as? NSNumber)?.intValue ?? 0 > 0 && created["type"] == nil)
            #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE type = 'export'") == "completed")
            let read = try await world.get("/api/v1/exports/\(volume)").object()
            #expect(read["status"] as? String == "active" && read["job_id"] is NSNull)
            #expect(read["export_name"] as? String == "migration-vol-\(volume)")
            #expect(read["device_path"] as? String == world.simulator.byIDLinkPath(forVolumeID: volume))

            let unexport = try await world.send(.DELETE, "/api/v1/exports/\(volume)")
            #expect(unexport.status == 200, "\(unexport.text)")
            #expect(try unexport.object()["message"] as? String == "NBD export deleted successfully")
            #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE type = 'unexport'") == "completed")
            #expect(try await world.get("/api/v1/exports/\(volume)").object()["status"] as? String == "removed")
        }
    }

    @Test func forceSyncRunsReconciliationAndReportsIt() async throws {
        try await APIWorld.with(.serve) { world in
            try await eventually("the worker's start-up reconciliation") {
                (try await world.get("/api/v1/health").object()["details"] as? [String: Any])?["worker"] as? String == "running"
            }
            let strayName = "migration-vol-\(UUID().uuidString.lowercased())"
            let stray = world.exportDirectory.appendingPathComponent(strayName)
            try FileManager.default.createSymbolicLink(atPath: stray.path, withDestinationPath: "/dev/null")
            let answer = try await world.post("/api/v1/admin/force-sync")
            #expect(answer.status == 200, "\(answer.text)")
            let sync = try answer.object()
            #expect(isRFC3339(sync["timestamp"]))
            let report = try #require(sync["report"] as? [String: Any])
            #expect(report["dry_run"] as? Bool == false)
            let applied = try #require(report["applied"] as? [[String: Any]])
            #expect(applied.contains { $0["kind"] as? String == "remove_export" && ($0["message"] as? String)?.contains(strayName) == true },
                    "\(applied)")
            #expect((report["unresolved"] as? [Any])?.isEmpty == true, "\(report)")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: stray.path)) == nil)
        }
    }
}
