import CloudStackSimulator
import Foundation
import Logging
import PostgresNIO
import Schema

/// The checks after a chaos run, each a sentence when it fails: nothing lost (every row
/// terminal, every step as planned), nothing repeated (CloudStack's side-effect counters
/// equal what the completed operations needed), and the tables, CloudStack, the by-id links
/// and the export directories telling one story.
struct ChaosAudit {
    let world: ChaosWorld
    let drive: DriveOutcome
    let logger: Logger

    /// What the audit read, for the report.
    struct Findings: Sendable {
        var violations: [String] = []
        var operations: [String: [String: Int]] = [:]
        var rescues = 0
        var retries: [String: Int] = [:]
        var maxAttempts = 0
        var sideEffects = SimulatorState.SideEffects()
        var apiCalls = 0
        var jobs = 0
        var liveVolumes = 0
        var attachedVolumes = 0
        var activeExports = 0
    }

    func run() async throws -> Findings {
        let state = await world.simulator.state()
        // The pool warns when the first query races its start; that is noise in a report.
        var poolLogger = logger
        poolLogger.logLevel = .error
        var findings = try await PostgresClient.withRunning(try DatabaseURL(world.databaseURL), maximumConnections: 2, logger: poolLogger) { client in
            var findings = Findings()
            try await readQueue(client, into: &findings)
            try await compareTables(client, with: state, into: &findings)
            return findings
        }
        checkSteps(into: &findings)
        checkSideEffects(state, into: &findings)
        checkJobs(state, into: &findings)
        return findings
    }

    // MARK: Nothing lost

    private func readQueue(_ client: PostgresClient, into findings: inout Findings) async throws {
        for row in try await client.textRows(
            "SELECT type, status, count(*)::text FROM volume_operations GROUP BY 1, 2", logger: logger)
        {
            findings.operations[row[0]!, default: [:]][row[1]!] = Int(row[2]!)!
        }
        // An unfinished row says why, so a failure in CI can be read from its output alone:
        // its retry state, its last error, and every status change with the worker and time.
        for row in try await client.textRows("""
            SELECT o.id::text, o.type, o.status,
                   format('attempts %s/%s, claimable %s, claimed by %s, last error %s; history: %s',
                          o.attempts, o.max_attempts,
                          CASE WHEN o.run_after <= now() THEN 'now'
                               ELSE 'in ' || round(extract(epoch FROM o.run_after - now())::numeric, 1) || ' s' END,
                          coalesce(o.claimed_by, 'nobody'), coalesce(o.error_code || ' ' || o.error, 'none'),
                          (SELECT string_agg(format('%s→%s by %s at +%s s (%s)', coalesce(e.from_status, 'new'), e.to_status,
                                                    coalesce(e.worker, '-'),
                                                    round(extract(epoch FROM e.at - o.created_at)::numeric, 1),
                                                    coalesce(e.detail, '')), '; ' ORDER BY e.id)
                             FROM volume_operation_events e WHERE e.operation_id = o.id))
              FROM volume_operations o WHERE o.status IN ('pending', 'executing') ORDER BY o.seq
            """, logger: logger)
        {
            findings.violations.append("operation \(row[0]!) (\(row[1]!)) is still \(row[2]!) after the run: \(row[3] ?? "")")
        }
        findings.rescues = Int(try await client.textRows(
            "SELECT count(*)::text FROM volume_operation_events WHERE detail = 'lease expired'", logger: logger)[0][0]!)!
        for row in try await client.textRows("""
            SELECT coalesce(detail, 'unknown'), count(*)::text FROM volume_operation_events
             WHERE from_status = 'executing' AND to_status = 'pending' AND detail IS DISTINCT FROM 'lease expired'
             GROUP BY 1
            """, logger: logger)
        {
            findings.retries[row[0]!] = Int(row[1]!)!
        }
        findings.maxAttempts = Int(try await client.textRows(
            "SELECT coalesce(max(attempts), 0)::text FROM volume_operations", logger: logger)[0][0]!)!
    }

    private func checkSteps(into findings: inout Findings) {
        for chain in drive.chains {
            for (step, outcome) in chain.steps where !outcome.asExpected {
                let expected = outcome.expectedFailureCodes.map { "to fail with \($0.sorted().joined(separator: " or "))" } ?? "to complete"
                findings.violations.append(
                    "chain \(chain.chain.index) step \(step.rawValue) (operation \(outcome.operationID)) was expected \(expected) "
                        + "but is \(outcome.status)\(outcome.errorCode.map { " (\($0))" } ?? ""): \(outcome.error ?? "")")
            }
        }
        for (row, outcome) in drive.badRows where !outcome.asExpected {
            findings.violations.append(
                "bad row \(row.kind.rawValue) (operation \(outcome.operationID)) was expected to fail with "
                    + "\(row.expectedFailureCodes.sorted().joined(separator: " or ")) but is \(outcome.status)"
                    + "\(outcome.errorCode.map { " (\($0))" } ?? ""): \(outcome.error ?? "")")
        }
    }

    // MARK: Nothing repeated

    /// Per volume, each counter equals the completed operations that needed that call: one
    /// createVolume per completed create, one attachVolume per completed first attach (a
    /// repeated attach verifies), one detachVolume per detach (not counting those that timed
    /// out in KVM with the disk held, which took no effect), one deleteVolume per delete.
    /// A side effect on a volume no chain owns is a create repeated behind volumed's back.
    /// An attach or detach whose job CloudStack itself failed without running it (job GC
    /// cancel) did nothing, so the one request after it is not a repeat; a create's volume
    /// exists from the request on, so an abandoned create job never excuses a second one.
    private func checkSideEffects(_ state: SimulatorState, into findings: inout Findings) {
        var owned: Set<String> = []
        for chain in drive.chains {
            guard let volumeID = chain.volumeID else { continue }
            owned.insert(volumeID)
            let actual = state.sideEffects(for: volumeID)
            let abandoned = state.jobs.filter { $0.abandoned && $0.volumeid == volumeID }
            let expected = SimulatorState.SideEffects(
                createVolume: chain.completedCount(.create),
                attachVolume: chain.completedCount(.attach) + abandoned.filter { $0.command == "attachVolume" }.count,
                detachVolume: chain.completedCount(.detach) + abandoned.filter { $0.command == "detachVolume" }.count,
                deleteVolume: chain.completedCount(.delete))
            for (name, want, got) in [
                ("createVolume", expected.createVolume, actual.createVolume),
                ("attachVolume", expected.attachVolume, actual.attachVolume),
                ("detachVolume", expected.detachVolume, actual.detachVolume - actual.detachTimedOut),
                ("deleteVolume", expected.deleteVolume, actual.deleteVolume),
            ] where want != got {
                findings.violations.append(
                    "volume \(volumeID) (chain \(chain.chain.index)): CloudStack received \(name) \(got) time(s), "
                        + "but its completed operations needed \(want)\(got > want ? ": a side effect was repeated" : ": one was lost")")
            }
        }
        for (volumeID, effects) in state.sideEffects.sorted(by: { $0.key < $1.key }) {
            findings.sideEffects.createVolume += effects.createVolume
            findings.sideEffects.attachVolume += effects.attachVolume
            findings.sideEffects.detachVolume += effects.detachVolume
            findings.sideEffects.detachTimedOut += effects.detachTimedOut
            findings.sideEffects.deleteVolume += effects.deleteVolume
            if !owned.contains(volumeID) {
                findings.violations.append(
                    "volume \(volumeID) received side effects no chain accounts for (create \(effects.createVolume), "
                        + "attach \(effects.attachVolume), detach \(effects.detachVolume), delete \(effects.deleteVolume))")
            }
        }
        let completedCreates = drive.chains.map { $0.completedCount(.create) }.reduce(0, +)
        if findings.sideEffects.createVolume != completedCreates {
            findings.violations.append(
                "CloudStack created \(findings.sideEffects.createVolume) volumes for \(completedCreates) completed create operations")
        }
        findings.apiCalls = state.requestCounts.values.reduce(0, +)
    }

    /// A job still running after every operation finished is a side effect nobody waits for.
    private func checkJobs(_ state: SimulatorState, into findings: inout Findings) {
        findings.jobs = state.jobs.count
        for job in state.jobs where job.status == 0 {
            findings.violations.append(
                "CloudStack job \(job.id) (\(job.command) of volume \(job.volumeid ?? "?")) is still running after the run; "
                    + "no operation waited for it")
        }
    }

    // MARK: One story

    private func compareTables(_ client: PostgresClient, with state: SimulatorState, into findings: inout Findings) async throws {
        let cloudVolumes = Dictionary(uniqueKeysWithValues: state.volumes.filter { $0.type == "DATADISK" }.map { ($0.id, $0) })
        let liveRows = Set(try await client.textRows("SELECT volume_id FROM volumes WHERE state <> 'Deleted'", logger: logger).map { $0[0]! })
        findings.liveVolumes = cloudVolumes.count
        for id in Set(cloudVolumes.keys).subtracting(liveRows).sorted() {
            findings.violations.append("CloudStack has volume \(id) but `volumes` has no live row for it")
        }
        for id in liveRows.subtracting(cloudVolumes.keys).sorted() {
            findings.violations.append("`volumes` has a live row for \(id) but CloudStack has no such volume")
        }

        struct Mapping { let vmID: String; let mode: String; let deviceID: String?; let byIDPath: String?; let devicePath: String? }
        var mappings: [String: Mapping] = [:]
        for row in try await client.textRows("""
            SELECT volume_id, vm_id, operation_mode, cloudstack_device_id::text, by_id_path, device_path FROM device_mappings
            """, logger: logger)
        {
            mappings[row[0]!] = Mapping(vmID: row[1]!, mode: row[2]!, deviceID: row[3], byIDPath: row[4], devicePath: row[5])
        }
        let attached = cloudVolumes.values.filter { $0.virtualmachineid != nil }
        findings.attachedVolumes = attached.count
        for volume in attached.sorted(by: { $0.id < $1.id }) {
            guard let mapping = mappings[volume.id] else {
                findings.violations.append("volume \(volume.id) is attached to VM \(volume.virtualmachineid!) in CloudStack but has no device mapping")
                continue
            }
            let appliance = world.appliance(vmID: volume.virtualmachineid)
            if mapping.vmID != volume.virtualmachineid || mapping.deviceID != volume.deviceid.map(String.init)
                || mapping.mode != (appliance == nil ? "remote" : "appliance")
            {
                findings.violations.append(
                    "volume \(volume.id): CloudStack has it on VM \(volume.virtualmachineid!) device \(volume.deviceid.map(String.init) ?? "?"), "
                        + "the mapping says VM \(mapping.vmID) device \(mapping.deviceID ?? "?") (\(mapping.mode))")
            }
            if let appliance {
                checkLink(volume.id, mapping.byIDPath, mapping.devicePath, on: appliance, into: &findings)
            }
        }
        for (volumeID, mapping) in mappings.sorted(by: { $0.key < $1.key }) where cloudVolumes[volumeID]?.virtualmachineid == nil {
            findings.violations.append("device mapping of volume \(volumeID) (VM \(mapping.vmID)) but CloudStack has the volume detached or gone")
        }

        let exports = try await client.textRows("""
            SELECT export_name, volume_id, device_path FROM vm_export_mappings WHERE status = 'active'
            """, logger: logger)
        findings.activeExports = exports.count
        var rowsByName: [String: (volumeID: String, devicePath: String)] = [:]
        for row in exports { rowsByName[row[0]!] = (row[1]!, row[2]!) }
        for (name, row) in rowsByName.sorted(by: { $0.key < $1.key }) {
            guard let mapping = mappings[row.volumeID], mapping.mode == "appliance", let appliance = world.appliance(vmID: mapping.vmID) else {
                findings.violations.append("active export \(name) of volume \(row.volumeID) has no appliance mapping behind it")
                continue
            }
            if row.devicePath != mapping.byIDPath {
                findings.violations.append("active export \(name) serves \(row.devicePath), the mapping's by-id path is \(mapping.byIDPath ?? "none")")
            }
            let entry = appliance.exportDirectory.appendingPathComponent(name).path
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: entry)
            if target != row.devicePath {
                findings.violations.append(
                    "active export \(name) on appliance \(appliance.label): its entry \(entry) "
                        + (target.map { "points at \($0), not \(row.devicePath)" } ?? "is missing"))
            }
        }
        for appliance in world.appliances {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: appliance.exportDirectory.path)) ?? []
            for entry in entries.sorted() {
                guard let row = rowsByName[entry], world.appliance(vmID: mappings[row.volumeID]?.vmID)?.label == appliance.label else {
                    findings.violations.append("export entry \(entry) on appliance \(appliance.label) has no active export row of a volume attached there")
                    continue
                }
            }
        }
        checkShapes(cloudVolumes: cloudVolumes, exportedVolumes: Set(rowsByName.values.map(\.volumeID)), into: &findings)
    }

    /// A chain that ran to its end left its volume where its shape says: gone, attached to its
    /// appliance (exported or not), or detached.
    private func checkShapes(cloudVolumes: [String: SimulatorState.Volume], exportedVolumes: Set<String>, into findings: inout Findings) {
        for chain in drive.chains where chain.finished {
            guard let volumeID = chain.volumeID else { continue }
            let appliance = world.appliances[chain.chain.applianceIndex].vmID
            let wanted: (exists: Bool, vmID: String?, exported: Bool)
            switch chain.chain.shape {
            case .full: wanted = (false, nil, false)
            case .keptExported: wanted = (true, appliance, true)
            case .keptAttached: wanted = (true, appliance, false)
            case .keptDetached: wanted = (true, nil, false)
            }
            let volume = cloudVolumes[volumeID]
            let got = (exists: volume != nil, vmID: volume?.virtualmachineid, exported: exportedVolumes.contains(volumeID))
            if got != wanted {
                findings.violations.append(
                    "chain \(chain.chain.index) (\(chain.chain.shape.rawValue)) left volume \(volumeID) "
                        + "\(got.exists ? "existing" : "gone"), on VM \(got.vmID ?? "none"), \(got.exported ? "exported" : "not exported")")
            }
        }
    }

    /// An appliance mapping's by-id path is the volume's link in that appliance's by-id
    /// directory (named for that appliance's bus), and its device path is where that link leads.
    private func checkLink(_ volumeID: String, _ byIDPath: String?, _ devicePath: String?, on appliance: ChaosAppliance,
                           into findings: inout Findings)
    {
        guard let expected = world.simulator.byIDLinkPath(forVolumeID: volumeID, onVM: appliance.vmID) else {
            findings.violations.append("volume \(volumeID): appliance \(appliance.label) has no hot-plug in the simulator")
            return
        }
        guard byIDPath == expected else {
            findings.violations.append("volume \(volumeID) on appliance \(appliance.label): by_id_path is \(byIDPath ?? "none"), expected \(expected)")
            return
        }
        guard let resolved = realPath(expected) else {
            findings.violations.append("volume \(volumeID) on appliance \(appliance.label): its by-id link \(expected) does not resolve")
            return
        }
        if devicePath.flatMap(realPath) != resolved {
            findings.violations.append("volume \(volumeID): device_path \(devicePath ?? "none") but its by-id link resolves to \(resolved)")
        }
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
