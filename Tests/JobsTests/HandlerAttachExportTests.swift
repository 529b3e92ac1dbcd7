import NBD
import CloudStackSimulator
import DevServices
import Foundation
import Operations
import TestSupport
import Testing

/// An attach to the appliance with `"export": true` (what the original daemon's HTTP attach
/// did): the export is published through the same code as `export`, recorded in the attach's
/// completing transaction, and removed by the detach.
@Suite(.serialized) struct HandlerAttachExportTests {
    /// A harness whose handlers publish through a real nbdkit (the scratch appliance's).
    static func withExports(_ body: @escaping @Sendable (HandlerHarness, NBDTestAppliance) async throws -> Void) async throws {
        let nbd = try await NBDTestAppliance.start()
        do {
            try await HandlerHarness.with(
                exportRemover: BackendExportRemover(backend: nbd.backend),
                exporter: ExportPublisher(backend: nbd.backend, checkTimeout: .seconds(3))
            ) { h in try await body(h, nbd) }
        } catch {
            await nbd.stop()
            throw error
        }
        await nbd.stop()
    }

    static func exportRows(_ h: HandlerHarness, _ volumeId: String) async throws -> String? {
        try await h.db.scalar("""
            SELECT string_agg(vm_id || '/' || disk_unit_number || '/' || coalesce(vm_name, '') || '/' || status, ',' ORDER BY id)
            FROM vm_export_mappings WHERE volume_id = '\(volumeId)'
            """)
    }

    /// A worker killed after publishing and before completing leaves the volume attached in
    /// CloudStack, the backend entry in place, and no row: the retry completes with one row,
    /// without a second attachVolume, and a repeat of the attach reuses it.
    @Test func aRetryAfterAKillBetweenPublishingAndCompletingWritesOneRow() async throws {
        try await Self.withExports { h, nbd in
            let volumeId = try await h.cloudVolume()
            let name = "migration-vol-\(volumeId)"
            try await h.cloudAttach(volumeId, to: h.appliance)
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            try await nbd.backend.publish(exportName: name, devicePath: link)

            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance, request: #"{"export": true}"#)
            #expect(row.status == "completed", "\(row.error ?? "")")
            let response = try row.json()
            #expect(response["export_name"] as? String == name && response["nbd_port"] as? Int == nbd.server.port, "\(response)")
            #expect(response.keys.contains("export_error") && response["export_error"] is NSNull, "\(response)")
            #expect(try await Self.exportRows(h, volumeId) == "\(h.appliance)/0/\(h.appliance)/active")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            let size = try await ProcessRunner.run(["nbdinfo", "--size", nbd.server.uri(exportName: name)])
            #expect(size.output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(GiB)")

            let again = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance, request: #"{"export": true}"#)
            #expect(try again.status == "completed" && again.json()["export_name"] as? String == name)
            #expect(try await Self.exportRows(h, volumeId) == "\(h.appliance)/0/\(h.appliance)/active")

            // The detach (no force) takes the attachment's export down with it.
            let detached = try await h.runOnFreshWorker("detach", volume: volumeId)
            #expect(detached.status == "completed", "\(detached.error ?? "")")
            #expect(try await Self.exportRows(h, volumeId) == "\(h.appliance)/0/\(h.appliance)/removed")
            #expect(try await nbd.backend.listExports().isEmpty)
        }
    }

    /// A source VM's `export` of the volume takes over the export the attach made (same entry,
    /// the row re-keyed) instead of conflicting with it; from then on the export is the source
    /// VM's, and a detach without `force` is refused as for any export made by `export`.
    @Test func aSourceVMExportTakesOverTheAttachExport() async throws {
        try await Self.withExports { h, nbd in
            let volumeId = try await h.cloudVolume()
            let name = "migration-vol-\(volumeId)"
            let attached = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance, request: #"{"export": true}"#)
            #expect(attached.status == "completed", "\(attached.error ?? "")")

            var handlers = h.environment.handlers()
            handlers[.export] = ExportHandler(backend: nbd.backend, resolver: h.environment.resolver, checkTimeout: .seconds(3))
            let worker = h.startWorker(handlers: handlers)
            let customer = SimulatorConfiguration.customerVMID
            let exported = try await h.finished(try await h.enqueue(
                "export", volume: volumeId, vm: customer, request: #"{"vm_name": "pgtest1", "disk_unit_number": 0}"#))
            let detached = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            try await worker.stop()

            #expect(exported.status == "completed", "\(exported.error ?? "")")
            let response = try exported.json()
            #expect(response["export_name"] as? String == name && response["reused"] as? Bool == true, "\(response)")
            #expect(try await Self.exportRows(h, volumeId) == "\(customer)/0/pgtest1/active")
            #expect(try await nbd.backend.listExports().map(\.name) == [name])
            #expect(detached.status == "failed" && detached.errorCode == "volume_exported", "\(detached.error ?? "")")
        }
    }

    /// Two volumes on the appliance get the next free disk numbers; a plain attach (no
    /// `export`) makes none, as before.
    @Test func eachExportingAttachTakesTheNextFreeDiskNumberAndAPlainAttachExportsNothing() async throws {
        try await Self.withExports { h, _ in
            let (a, b, plain) = (try await h.cloudVolume(), try await h.cloudVolume(), try await h.cloudVolume())
            for volume in [a, b] {
                let row = try await h.runOnFreshWorker("attach", volume: volume, vm: h.appliance, request: #"{"export": true}"#)
                #expect(row.status == "completed", "\(row.error ?? "")")
            }
            #expect(try await Self.exportRows(h, a) == "\(h.appliance)/0/\(h.appliance)/active")
            #expect(try await Self.exportRows(h, b) == "\(h.appliance)/1/\(h.appliance)/active")
            let row = try await h.runOnFreshWorker("attach", volume: plain, vm: h.appliance)
            #expect(try row.status == "completed" && !row.json().keys.contains("export_name"))
            #expect(try await Self.exportRows(h, plain) == nil)
        }
    }

    /// An export that fails (here: no NBD server answers the check) does not lose the attach:
    /// the operation completes with its mapping and `export_error`, and no row or entry is left.
    @Test func aFailedExportLeavesTheAttachCompletedWithExportError() async throws {
        let nbd = try await NBDTestAppliance.start()
        let deadPort = try NbdkitServer.freeLoopbackPort()
        let backend = NbdkitDirectoryBackend(exportDirectory: nbd.exports, host: "127.0.0.1", port: deadPort)
        do {
            try await HandlerHarness.with(exporter: ExportPublisher(backend: backend, checkTimeout: .seconds(1))) { h in
                let volumeId = try await h.cloudVolume()
                let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance, request: #"{"export": true}"#)
                #expect(row.status == "completed", "\(row.error ?? "")")
                let response = try row.json()
                let error = try #require(response["export_error"] as? [String: Any], "\(response)")
                #expect(!(error["code"] as? String ?? "").isEmpty && !(error["message"] as? String ?? "").isEmpty)
                #expect(response["export_name"] is NSNull)
                #expect(try await h.mapping(volumeId)?.mode == "appliance")
                #expect(try await Self.exportRows(h, volumeId) == nil)
                #expect(try await backend.listExports().isEmpty)
            }
        } catch {
            await nbd.stop()
            throw error
        }
        await nbd.stop()
    }
}
