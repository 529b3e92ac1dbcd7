import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing
import Worker

/// How a step ends when CloudStack ends its job in ways other than success or the command's
/// own failure: a job its GC cancelled or a restart failed (no `jobresult`), a job deleted
/// after `job.expire.minutes`, and a job that finishes only after the worker stopped waiting.
@Suite struct HandlerJobEndingTests {
    static let customer = SimulatorConfiguration.customerVMID

    /// Sends attachVolume directly, as a worker did before it checkpointed the job id and died,
    /// while the simulator applies `faults` to the job it starts; later jobs run normally.
    private func attachJob(_ h: HandlerHarness, _ volumeId: String, faults: SimulatorFaults) async throws -> String {
        await h.simulator.setFaults(faults)
        let jobId: String
        do {
            jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: Self.customer)
        } catch {
            await h.simulator.setFaults(SimulatorFaults())
            throw error
        }
        await h.simulator.setFaults(SimulatorFaults())
        return jobId
    }

    private static func faults(_ change: (inout SimulatorFaults) -> Void) -> SimulatorFaults {
        var faults = SimulatorFaults()
        change(&faults)
        return faults
    }

    /// AsyncJobManagerImpl's GC cancels a job blocking its queue (jobstatus 2, jobresultcode 0,
    /// no jobresult) and a management-server restart fails left-over jobs (530, no jobresult).
    /// Neither says what the command did: the step keeps the unanswered mark, and the retry looks
    /// at the volume (no job pending, still detached) before it attaches, once.
    @Test(arguments: ["gc_cancel", "restart"])
    func anAttachJobCloudStackEndedWithoutAResultIsRetriedAfterALookAtTheVolume(_ ending: String) async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await attachJob(h, volumeId, faults: Self.faults {
                if ending == "gc_cancel" { $0.jobGCCancelRate = 1 } else { $0.jobRestartCancelRate = 1 }
            })
            try await eventually("the job ended") { try await h.client.queryAsyncJobResult(jobId: jobId).status != .pending }
            let ended = try await h.client.queryAsyncJobResult(jobId: jobId)
            #expect(ended.status == .failed && ended.errorCode == nil && ended.errorText == nil)
            #expect(ended.resultCode == (ending == "restart" ? 530 : 0))

            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: Self.customer, checkpoint: #"{"job_id":"\#(jobId)"}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts >= 2, "the abandoned job is a transient failure, the retry attaches")
            let state = await h.simulator.state()
            #expect(state.jobs.first { $0.id == jobId }?.abandoned == true)
            #expect(state.sideEffects(for: volumeId).attachVolume == 2, "one request that did nothing, one that attached")
            #expect(state.volume(volumeId)?.virtualmachineid == Self.customer)
            #expect(row.checkpoint?.contains(jobId) == false, "the retry waited on its own job")
        }
    }

    /// Why the unanswered mark and not a plain reset: a GC-cancelled job's thread is not stopped,
    /// so its detach may land after the attempt that saw the job fail. The retry then finds the
    /// volume detached and reports the VM it came off (what the request was sent for), instead of
    /// "was not attached", and sends nothing.
    @Test func aDetachThatLandsAfterItsJobWasCancelledIsTakenAsThatRequestsWork() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: Self.customer)
            await h.simulator.setFaults(Self.faults { $0.jobGCCancelRate = 1 })
            let jobId = try await h.client.detachVolume(id: volumeId)
            await h.simulator.setFaults(SimulatorFaults())
            let id = try await h.enqueue("detach", volume: volumeId, checkpoint: #"{"job_id":"\#(jobId)","vm_id":"\#(Self.customer)"}"#)
            // A worker whose retry waits long enough for the late detach to land first.
            let first = h.startWorker { $0.backoff = Backoff(base: .seconds(3), cap: .seconds(3), jitter: 0) }
            try await eventually("the first attempt ended") {
                let row = try await h.operation(id)
                return row.attempts == 1 && row.status == "pending"
            }
            try await first.stop()
            #expect(try await h.operation(id).checkpoint?.contains(#""request_unanswered": true"#) == true)
            // The cancelled job's work lands after all.
            _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))

            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == Self.customer)
            #expect(await h.sideEffects(volumeId).detachVolume == 2, "the cancelled one and the late one; none from the retry")
        }
    }

    /// The client names the abandoned job's command and cause, and retries it.
    @Test func aJobWithoutAResultIsTheTransientCloudstackJobAbandoned() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await attachJob(h, volumeId, faults: Self.faults { $0.jobGCCancelRate = 1 })
            let error = try #require(await expectCloudStackError { _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10)) })
            #expect(error.code == "cloudstack_job_abandoned")
            #expect(error.isTransient)
            #expect(error.leavesOutcomeUnknown)
            #expect(error.command == "attachVolume")
            #expect(error.message.contains("job.cancel.threshold.minutes"), "\(error.message)")
        }
    }

    /// A job CloudStack deleted (job.expire.minutes) while the operation waited to resume: its
    /// job id now answers 431 "…entity does not exist…". The attach had taken effect, so the
    /// volume on the VM is the outcome, with no second attachVolume.
    @Test func aPurgedJobWhoseAttachTookEffectCompletesFromTheVolume() async throws {
        try await HandlerHarness.with(faults: Self.faults { $0.jobExpireSeconds = 1 }) { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: Self.customer)
            _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            try await eventually(timeout: .seconds(10), "the job purged") { await h.simulator.state().jobs.first { $0.id == jobId }?.purged == true }
            let purged = try #require(await expectCloudStackError { _ = try await h.client.queryAsyncJobResult(jobId: jobId) })
            #expect(purged.code == "cloudstack_job_purged" && purged.isTransient && purged.jobId == jobId)

            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: Self.customer, checkpoint: #"{"job_id":"\#(jobId)"}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(try await h.mapping(volumeId)?.vmId == Self.customer)
        }
    }

    /// A purged job of an attach that did not take effect (CloudStack no longer knows the job,
    /// the volume is detached): never a permanent failure; the retry looks at the volume and
    /// attaches.
    @Test func aPurgedJobWhoseAttachDidNothingIsRetriedAndAttaches() async throws {
        try await HandlerHarness.with(faults: Self.faults { $0.jobExpireSeconds = 1 }) { h in
            let volumeId = try await h.cloudVolume()
            // An attach whose job failed (the VM is Destroyed), then was deleted.
            let gone = try await h.testVM(state: "Running", rootVolume: true)
            _ = try await h.client.waitForJob(jobId: try await h.client.destroyVirtualMachine(id: gone), timeout: .seconds(10))
            let jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: gone)
            _ = try? await h.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            try await eventually(timeout: .seconds(10), "the job purged") { await h.simulator.state().jobs.first { $0.id == jobId }?.purged == true }

            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: Self.customer, checkpoint: #"{"job_id":"\#(jobId)"}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts >= 2, "the purged job is a transient failure; the retry attaches")
            #expect(await h.sideEffects(volumeId).attachVolume == 2, "the failed attach and the one that worked")
            #expect(await h.attachedVM(volumeId) == Self.customer)
        }
    }

    /// A job that stays pending past the worker's job timeout (2 s) and finishes at 6 s: the
    /// first attempt times out keeping the job id, and the retry adopts the finished job instead
    /// of attaching again.
    @Test func aJobFinishingAfterTheJobTimeoutIsAdoptedByTheRetry() async throws {
        try await HandlerHarness.with(jobTimeout: .seconds(2)) { h in
            let volumeId = try await h.cloudVolume()
            await h.simulator.setFaults(Self.faults { $0.stuckRate = 1; $0.stuckDelayMs = 6000 })
            let worker = h.startWorker()
            let id = try await h.enqueue("attach", volume: volumeId, vm: Self.customer)
            try await eventually("attachVolume sent") { await h.sideEffects(volumeId).attachVolume == 1 }
            await h.simulator.setFaults(SimulatorFaults())
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts >= 2, "the first attempt timed out")
            let jobs = await h.simulator.state().jobs.filter { $0.volumeid == volumeId && $0.command == "attachVolume" }
            #expect(jobs.count == 1)
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(row.checkpoint?.contains(try #require(jobs.first?.id)) == true, "the retry waited on the late job")
            let events = try await h.db.scalar("""
                SELECT string_agg(detail, ',') FROM volume_operation_events WHERE operation_id = '\(id)' AND to_status = 'pending'
                """)
            #expect(events?.contains("cloudstack_job_timeout") == true, "\(events ?? "")")
        }
    }
}
