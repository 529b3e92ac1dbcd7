import CloudStackSimulator
import AsyncHTTPClient
import DevServices
import Foundation
import TestSupport
import Testing

/// The web console as an operator uses it: `volumed serve`'s services (worker, simulator,
/// nbdkit) and the page opened in a real headless Chromium, which runs the page's own script.
/// Skipped, saying why, only where Chromium is not installed (`.ci/run` installs it).
@Suite(.serialized, .enabled(if: HeadlessChromium.executable != nil, Comment(rawValue: HeadlessChromium.missingMessage)))
struct ConsoleBrowserTests {
    /// The page renders the queue; an operation inserted with SQL shows up while it waits on
    /// CloudStack and moves to completed, all without the page reloading.
    @Test func anOperationInsertedBySQLAppearsAndCompletesWithoutAReload() async throws {
        try await APIWorld.with(.serve, asyncDelay: .seconds(3)) { world in
            try await HeadlessChromium.withPage(world.baseURL + "/") { page in
                try await page.waitFor("the queue", "document.querySelector('#queue #counts') && document.querySelector('#connection.live')")
                try await page.evaluate("window.stillTheSamePage = true; return null;")

                let id = try #require(try await world.db.scalar("""
                    SELECT volume_operation_enqueue('create', NULL, NULL, '\(createBody(name: "console-live"))'::jsonb)::text
                    """))
                try await page.waitFor("the create waiting on its CloudStack job",
                                       "document.querySelector('#executing tr[data-op=\"\(id)\"] .step')?.textContent.includes('waiting on CloudStack job')")
                try await page.waitFor("the create completed",
                                       "document.querySelector('#recent tr[data-op=\"\(id)\"][data-status=\"completed\"]')")
                #expect(try await page.text("document.querySelector('#counts tr[data-type=\"create\"] td[data-status=\"completed\"]').textContent") == "1")
                #expect(try await page.evaluate("return window.stillTheSamePage === true;") == "true", "the page reloaded")
                #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "completed")
            }
        }
    }

    /// Cancel on a pending operation asks first, then cancels it through
    /// `volume_operation_cancel`; the page shows it cancelled.
    @Test func cancelAsksThenCancelsAPendingOperation() async throws {
        try await APIWorld.with(.serve) { world in
            let volume = try await world.cloudVolume()
            // Due in an hour: it stays pending until cancelled.
            let id = try #require(try await world.db.scalar("""
                INSERT INTO volume_operations (type, volume_id, request, run_after)
                VALUES ('delete', '\(volume)', '{}', now() + interval '1 hour') RETURNING id::text
                """))
            try await HeadlessChromium.withPage(world.baseURL + "/") { page in
                let button = "document.querySelector('#pending tr[data-op=\"\(id)\"] button[data-cancel]')"
                try await page.waitFor("the pending delete with a Cancel button", button)
                try await page.evaluate("\(button).click(); return null;")
                try await page.waitFor("the delete cancelled", "document.querySelector('#recent tr[data-op=\"\(id)\"][data-status=\"cancelled\"]')")
                #expect(page.dialogs.count == 1 && page.dialogs.first?.contains(id) == true, "confirmed first: \(page.dialogs)")
                #expect(try await page.evaluate("return \(button) === null;") == "true")
            }
            #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "cancelled")
            #expect(try await world.db.scalar("""
                SELECT string_agg(coalesce(from_status, '-') || '>' || to_status, ',' ORDER BY id) FROM volume_operation_events
                WHERE operation_id = '\(id)'
                """) == "->pending,pending>cancelled")
        }
    }

    /// A volume attached to the appliance and exported: its row shows the by-id link, the
    /// device it resolves to now, the link's live state, and the NBD export and port.
    @Test func theApplianceTableShowsTheByIdLinkAndExportOfAnExportedVolume() async throws {
        try await APIWorld.with(.serve) { world in
            let volume = try await world.cloudVolume()
            let attach = try #require(try await world.db.scalar(
                "SELECT volume_operation_enqueue('attach', '\(volume)', '\(world.appliance)', '{}')::text"))
            #expect(try await world.finished(attach) == "completed")
            let export = try #require(try await world.db.scalar("""
                SELECT volume_operation_enqueue('export', '\(volume)', '\(SimulatorConfiguration.customerVMID)',
                       '{"job_id": "replication-7", "vm_name": "source-vm", "disk_unit_number": 0}')::text
                """))
            #expect(try await world.finished(export) == "completed")
            let byId = try #require(try await world.db.scalar("SELECT by_id_path FROM device_mappings WHERE volume_id = '\(volume)'"))
            let device = try #require(try await world.db.scalar("SELECT device_path FROM device_mappings WHERE volume_id = '\(volume)'"))
            let port = try #require(try await world.db.scalar("SELECT nbd_port::text FROM vm_export_mappings WHERE volume_id = '\(volume)'"))

            try await HeadlessChromium.withPage(world.baseURL + "/") { page in
                let row = "document.querySelector('#appliances .appliance[data-vm=\"\(world.appliance)\"] tr[data-volume=\"\(volume)\"]')"
                try await page.waitFor("the exported volume on the appliance", row)
                let cells = try await page.evaluate("return Array.from(\(row).cells).map(cell => cell.textContent);")
                let texts = try #require(try JSONSerialization.jsonObject(with: Data(cells.utf8)) as? [String])
                #expect(texts == [volume, byId, device, "resolves", "migration-vol-\(volume)", port], "\(texts)")
                #expect(byId.hasSuffix("/virtio-" + CloudStackSimulator.diskSerial(forVolumeID: volume)))

                // The link disappears (a detach behind volumed's back): the live state says so.
                try FileManager.default.removeItem(atPath: byId)
                try await page.waitFor("the link reported missing", "\(row)?.querySelector('.link-state')?.textContent === 'missing'")
            }
        }
    }

    /// With a token: the page asks for it and shows nothing before; no data route answers
    /// without it; typed in once, it is kept in the tab (sessionStorage) only.
    @Test func withATokenNoDataIsServedWithoutIt() async throws {
        try await APIWorld.with(.serve, token: "console-secret") { world in
            let id = try #require(try await world.db.scalar("""
                INSERT INTO volume_operations (type, request, run_after)
                VALUES ('create', '\(createBody(name: "secret-volume"))', now() + interval '1 hour') RETURNING id::text
                """))
            for path in ["/console/fragments/overview", "/console/fragments/operations/\(id)", "/console/events"] {
                let answer = try await world.send(.GET, path, authorization: .some(nil))
                #expect(answer.status == 401 && !answer.text.contains(id), "\(path): \(answer.status) \(answer.text)")
                #expect(try await world.send(.GET, path, authorization: "Bearer wrong").status == 401, "\(path)")
            }
            #expect(try await world.send(.POST, "/console/operations/\(id)/cancel", authorization: .some(nil)).status == 401)
            #expect(try await world.db.scalar("SELECT status FROM volume_operations WHERE id = '\(id)'") == "pending")
            let shell = try await world.send(.GET, "/", authorization: .some(nil))
            #expect(shell.status == 200 && !shell.text.contains(id) && !shell.text.contains("secret-volume"))

            try await HeadlessChromium.withPage(world.baseURL + "/") { page in
                try await page.waitFor("the token form", "!document.querySelector('#login').hidden")
                #expect(try await page.evaluate("return document.body.innerHTML.includes('\(id)');") == "false")
                #expect(try await page.text("document.querySelector('#connection').textContent") == "token needed")

                try await page.evaluate("""
                    document.querySelector('#token').value = 'wrong'; document.querySelector('#login').requestSubmit(); return null;
                    """)
                try await page.waitFor("the wrong token refused", "document.querySelector('#login-error').textContent.includes('refused')")
                try await page.evaluate("""
                    document.querySelector('#token').value = 'console-secret'; document.querySelector('#login').requestSubmit(); return null;
                    """)
                try await page.waitFor("the queue after the token", "document.querySelector('#pending tr[data-op=\"\(id)\"]')")
                try await page.waitFor("the live stream", "document.querySelector('#connection.live')")
                #expect(try await page.text("sessionStorage.getItem('volumed-console-token')") == "console-secret")
                #expect(try await page.evaluate("return localStorage.length === 0 && document.cookie === '';") == "true")
            }
        }
    }

    /// A busy console, for the README (saved when VOLUMED_CONSOLE_SCREENSHOT names a file):
    /// work in flight, a failure, a pending retry, volumes attached and exported.
    @Test func aBusyConsoleRendersEverySection() async throws {
        try await APIWorld.with(.serve) { world in
            // Finished work for the charts: attached and exported volumes (fast: already in CloudStack).
            var volumes: [String] = []
            for _ in 0..<2 { volumes.append(try await world.cloudVolume()) }
            for (index, volume) in volumes.enumerated() {
                try await world.db.query("SELECT volume_operation_enqueue('attach', '\(volume)', '\(world.appliance)', '{}')")
                try await eventually("attach \(index)") {
                    try await world.db.scalar("SELECT count(*)::text FROM device_mappings WHERE volume_id = '\(volume)'") == "1"
                }
                try await world.db.query("""
                    SELECT volume_operation_enqueue('export', '\(volume)', '\(SimulatorConfiguration.customerVMID)',
                           '{"job_id": "replication-42", "vm_name": "source-vm", "disk_unit_number": \(index)}')
                    """)
            }
            try await eventually("the exports") {
                try await world.db.scalar("SELECT count(*)::text FROM vm_export_mappings WHERE status = 'active'") == "2"
            }
            // A failure with its advice, work waiting on CloudStack (jobs that hang), and pending work.
            await world.simulator.setFaults(SimulatorFaults(stuckRate: 1))
            try await world.db.query("SELECT volume_operation_enqueue('attach', '\(volumes[1])', '\(SimulatorConfiguration.customerVMID)', '{\"device_id\": 3}')")
            for index in 0..<2 {
                try await world.db.query("SELECT volume_operation_enqueue('create', NULL, NULL, '\(createBody(name: "busy-\(index)"))'::jsonb)")
            }
            try await world.db.query("""
                INSERT INTO volume_operations (type, volume_id, request, run_after)
                VALUES ('delete', '\(volumes[0])', '{"force": true}', now() + interval '10 minutes')
                """)
            let firstVolume = volumes[0]
            try await HeadlessChromium.withPage(world.baseURL + "/", width: 1280, height: 900) { page in
                try await page.waitFor("two creates waiting on CloudStack",
                                       "document.querySelectorAll('#executing td.step').length === 2 && Array.from(document.querySelectorAll('#executing td.step')).every(cell => cell.textContent.includes('CloudStack job'))")
                try await page.waitFor("the failure with advice", "document.querySelector('#failures .advice')")
                #expect(try await page.text("document.querySelector('#failures .code').textContent") == "invalid_request")
                #expect(try await page.text("document.querySelector('#failures .advice').textContent") == "Fix the field the error names and enqueue a new operation.")
                let cancel = try await page.text("document.querySelector('#pending button[data-cancel]').dataset.what")
                #expect(cancel == "delete of volume \(firstVolume)")
                #expect(try await page.evaluate("return document.querySelectorAll('#queue svg.chart rect').length > 0;") == "true")
                #expect(try await page.evaluate("return document.querySelectorAll('#appliances .export').length;") == "2")
                let png = try await page.screenshot()
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000)
                if let path = ProcessInfo.processInfo.environment["VOLUMED_CONSOLE_SCREENSHOT"] {
                    try png.write(to: URL(fileURLWithPath: path))
                }
            }
        }
    }

    /// The real `volumed serve` process: SIGTERM with a console open still stops it at once
    /// (the event stream ends with the graceful shutdown), and the page says it lost the
    /// connection instead of showing stale data as live.
    @Test func anOpenConsoleDoesNotHoldUpShutdownAndShowsTheConnectionLost() async throws {
        try await withDatabase { db in
            let scratch = try Scratch()
            defer { scratch.remove() }
            let simulator = try await scratch.startSimulator()
            let nbdkit = try await NbdkitServer.start(exportDirectory: scratch.exports.path)
            let port = try NbdkitServer.freeLoopbackPort()
            let log = scratch.root.appendingPathComponent("serve.log").path
            let serve = try ChildProcess(
                executable: URL(fileURLWithPath: ServeProcessTests.volumed), arguments: ["serve"], outputPath: log,
                environment: scratch.serveEnvironment(databaseURL: db.urlText, simulator: simulator, nbdPort: nbdkit.port, httpPort: port))
            defer { serve.send(SIGKILL) }
            try await eventually("volumed serve to listen") {
                (try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health"), timeout: .seconds(2)))?.status == .ok
            }
            try await HeadlessChromium.withPage("http://127.0.0.1:\(port)/") { page in
                try await page.waitFor("the live console", "document.querySelector('#connection.live') && document.querySelector('#queue')")
                serve.send(SIGTERM)
                // A stream that ignored the shutdown would keep volumed running: killed after 15 s, it exits 137.
                let deadline = Task {
                    try await Task.sleep(for: .seconds(15))
                    serve.send(SIGKILL)
                }
                let status = await serve.waitForExit()
                deadline.cancel()
                #expect(status == 0, "the open event stream held up the shutdown: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                try await page.waitFor("the connection reported lost", "document.querySelector('#connection.lost')")
                #expect(try await page.text("document.querySelector('#connection').textContent") == "connection lost — retrying")
            }
            await nbdkit.stop()
            await simulator.stop()
        }
    }
}
