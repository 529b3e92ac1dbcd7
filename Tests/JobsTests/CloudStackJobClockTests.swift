@testable import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import TestSupport
import Testing

/// CloudStack's clock: job durations drawn per command in the simulator, and polls planned from
/// the durations this client has seen (`JobDurationHistory`, `JobPollSchedule`).
@Suite("CloudStack job clock")
struct CloudStackJobClockTests {
    @Test("POST /sim/faults sets per-command job durations and refuses an unknown command or min above max, naming the field")
    func durationSetting() async throws {
        try await CloudStackHarness.with { harness in
            let unknown = try await postFaults(harness, #"{"job_durations_ms": {"listVolumes": {"min_ms": 1, "max_ms": 2}}}"#)
            #expect(unknown.status == 400)
            #expect(unknown.body.contains("job_durations_ms") && unknown.body.contains("listVolumes"))
            let reversed = try await postFaults(harness, #"{"job_durations_ms": {"attachVolume": {"min_ms": 900, "max_ms": 100}}}"#)
            #expect(reversed.status == 400)
            #expect(reversed.body.contains("job_durations_ms.attachVolume"))
            #expect(await harness.simulator.faults().jobDurationsMs.isEmpty)
            let accepted = try await postFaults(harness, #"{"job_durations_ms": {"createVolume": {"min_ms": 300, "max_ms": 400}}}"#)
            #expect(accepted.status == 200)
            #expect(await harness.simulator.faults().jobDurationsMs["createVolume"] == SimulatorDurationRange(minMs: 300, maxMs: 400))
        }
    }

    @Test("a job stays pending for a duration drawn from its command's range; the simulator counts the polls")
    func drawnDuration() async throws {
        var faults = SimulatorFaults()
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 300, maxMs: 400)]
        try await CloudStackHarness.with(asyncDelay: .milliseconds(10), faults: faults) { harness in
            let (_, jobId) = try await harness.client.createVolume(
                name: "drawn", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await harness.client.queryAsyncJobResult(jobId: jobId).status == .pending)
            try await Task.sleep(for: .milliseconds(250))
            #expect(try await harness.client.queryAsyncJobResult(jobId: jobId).status == .succeeded)
            let job = try #require(await harness.simulator.state().jobs.first { $0.id == jobId })
            #expect((300...400).contains(job.durationMs))
            #expect(job.queries == 2)
        }
    }

    @Test("a plan polls no sooner than the shortest duration seen, with gaps under 2 s, and within a 2 s poll's calls")
    func planShape() {
        // Attach-like jobs: 2–10 s, evenly spread.
        let durations = (0..<100).map { 2 + 8 * Double($0) / 99 }
        let plan = JobDurationHistory.plan(durations: durations)
        #expect(plan.first == 2)
        #expect(plan.last! >= 10)
        for (earlier, later) in zip(plan, plan.dropFirst()) {
            #expect(later - earlier <= JobDurationHistory.maximumGap.seconds + 1e-9)
        }
        let budget = durations.map(JobDurationHistory.referenceCalls).reduce(0, +) / Double(durations.count) * JobDurationHistory.budgetShare
        #expect(JobDurationHistory.meanCalls(plan, durations) <= budget)
        // A 2 s poll notices these 1 s late on average.
        #expect(JobDurationHistory.meanDelay(plan, durations) < 0.9)
        // A single duration: one poll at it.
        #expect(JobDurationHistory.plan(durations: Array(repeating: 3, count: 10)) == [3])
    }

    @Test("after enough jobs of a command, a job is polled near where they ended instead of from its start")
    func warmClientPollsLess() async throws {
        var faults = SimulatorFaults()
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 500, maxMs: 700)]
        try await CloudStackHarness.with(faults: faults) { harness in
            #expect(harness.client.jobDurations.plan(for: "createVolume") == nil)
            var jobIds: [String] = []
            for index in 0..<(JobDurationHistory.minimumSamples + 4) {
                let (_, jobId) = try await harness.client.createVolume(
                    name: "clock-\(index)", zoneId: SimulatorConfiguration.zoneID,
                    diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
                #expect(try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10)).status == .succeeded)
                jobIds.append(jobId)
            }
            let plan = try #require(harness.client.jobDurations.plan(for: "createVolume"))
            // Near 500 ms, not at the start (estimates are the middle of two looks).
            #expect(plan.first! >= .milliseconds(250))
            let jobs = Dictionary(uniqueKeysWithValues: await harness.simulator.state().jobs.map { ($0.id, $0) })
            // Cold (and every job before this change): at once, then 50, 100, 200, 400 ms apart:
            // 5 polls for a 500–700 ms job on an idle machine (fewer when each poll is slow).
            // Warm: the plan's polls near 500–700 ms, as few as a 2 s poll would send (2).
            for jobId in jobIds.suffix(3) {
                #expect(jobs[jobId]!.queries <= 3)
            }
        }
    }

    @Test("while webhook deliveries arrive, a wait polls at once, then sleeps until woken on its volume and confirms with one poll")
    func wakeUp() async throws {
        var faults = SimulatorFaults()
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 1000, maxMs: 1000)]
        try await CloudStackHarness.with(faults: faults) { harness in
            let client = harness.client
            #expect(client.wakeups.wake(entity: "no-such-volume") == 0)  // deliveries are live now
            let (volumeId, jobId) = try await client.createVolume(
                name: "woken", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            let started = ContinuousClock.now
            let wait = Task { try await client.waitForJob(jobId: jobId, timeout: .seconds(10)) }
            try await eventually(timeout: .seconds(5), "the wait to park") { client.wakeups.waiting == 1 }
            try await Task.sleep(until: started.advanced(by: .milliseconds(1100)), clock: .continuous)
            #expect(client.wakeups.wake(entity: volumeId.uppercased()) == 1)
            #expect(try await wait.value.status == .succeeded)
            let elapsed = ContinuousClock.now - started
            // The fallback's next look would come at 2 s.
            #expect(elapsed < .milliseconds(1800), "noticed after \(elapsed)")
            let job = try #require(await harness.simulator.state().jobs.first { $0.id == jobId })
            #expect(job.queries == 2)
            // A duplicate delivery after the wait returned finds nobody.
            #expect(client.wakeups.wake(entity: volumeId) == 0)
        }
    }

    @Test("a relayed delivery wakes this process's waits unless this process sent it, and only when it names a UUID")
    func relayedWakeUp() async throws {
        var faults = SimulatorFaults()
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 1000, maxMs: 1000)]
        try await CloudStackHarness.with(faults: faults) { harness in
            let client = harness.client
            let (volumeId, jobId) = try await client.createVolume(
                name: "relayed", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            let wait = Task { try await client.waitForJob(jobId: jobId, timeout: .seconds(10)) }
            try await eventually(timeout: .seconds(5), "the wait to park") { client.wakeups.waiting == 1 }
            // Its own relay (serve's listener hears the NOTIFY it sent): already woken locally.
            #expect(client.wakeups.wake(relayed: client.wakeups.relayPayload(entity: volumeId)) == 0)
            #expect(client.wakeups.wake(relayed: "another-process not-a-uuid") == 0)
            #expect(client.wakeups.wake(relayed: volumeId) == 0)
            // Another process's relay (its payload starts with that process's own token).
            let other = JobWakeups().relayPayload(entity: volumeId.uppercased())
            #expect(client.wakeups.wake(relayed: other) == 1)
            #expect(try await wait.value.status == .succeeded)
        }
    }

    @Test("a wait on a job another process started (a rescued operation) learns its volume from the first look and is woken too")
    func rescuedWaitIsWoken() async throws {
        var faults = SimulatorFaults()
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 2000, maxMs: 2000)]
        try await CloudStackHarness.with(faults: faults) { harness in
            let (volumeId, jobId) = try await harness.client.createVolume(
                name: "rescued", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
            let started = ContinuousClock.now
            // Another client: no record of the start, as after a kill -9 and a rescue.
            let other = CloudStackClient(configuration: harness.client.configuration, httpClient: .shared, logger: harness.logs.logger())
            let wait = Task { try await other.waitForJob(jobId: jobId, timeout: .seconds(10)) }
            try await eventually(timeout: .seconds(5), "the wait to learn its volume") { other.wakeups.waiting == 1 }
            try await Task.sleep(until: started.advanced(by: .milliseconds(2100)), clock: .continuous)
            #expect(other.wakeups.wake(entity: volumeId) == 1)
            #expect(try await wait.value.status == .succeeded)
            // Unwoken, its polls (at once, then 50 ms doubling) would see the end at 3.15 s.
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .milliseconds(2900), "noticed after \(elapsed)")
        }
    }
}
