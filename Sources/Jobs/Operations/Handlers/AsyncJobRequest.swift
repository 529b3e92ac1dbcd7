import CloudStack
import Worker

/// A step's progress that can record "request sent, no answer yet" next to the job id.
protocol UnansweredRequestProgress: Codable, Sendable {
    /// The async job CloudStack answered with, checkpointed before waiting on it.
    var jobId: String? { get set }
    /// The request was sent and no answer was read: CloudStack may be running a job for it.
    var requestUnanswered: Bool? { get set }
}

/// Sending an async command that acts on one CloudStack object (attachVolume and
/// detachVolume on a volume; stopVirtualMachine and destroyVirtualMachine on a VM) at most
/// once, even when the worker dies between CloudStack accepting it and the job id reaching
/// the checkpoint. Shared by `VolumeAttacher`, `VolumeDetacher`, `VirtualMachineStopper` and
/// `VirtualMachineDestroyer`, and through them by the `attach`, `detach`, `delete` (forced)
/// and `cleanup` handlers.
///
/// 1. Before sending, the progress is saved with `request_unanswered`.
/// 2. CloudStack answering with its own error (an `errorcode`) means nothing was started:
///    the mark is cleared. Any other failure (no answer, an unreadable one) keeps it.
/// 3. The answer's job id replaces the mark.
/// 4. A resumed step that finds the mark and no job id lists the object first: CloudStack
///    lists the pending job acting on a volume or VM as its `jobid` / `jobstatus` 0 (see
///    `CloudStackVolume.jobid`, `CloudStackVirtualMachine.jobid`). That job is adopted when
///    it runs this command; with no job pending the caller looks at the object as usual
///    (already in the wanted state is done; unchanged means the request never took effect
///    and may be sent again).
struct AsyncJobRequest: Sendable {
    let environment: JobsEnvironment
    /// The API command, e.g. `attachVolume`.
    let command: String

    /// Sends `request` with the mark saved first; returns the job id, already saved in `progress`.
    func send<Progress: UnansweredRequestProgress>(
        _ progress: Progress, save: @Sendable (Progress) async throws -> Void, request: () async throws -> String
    ) async throws -> String {
        var progress = progress
        progress.jobId = nil
        progress.requestUnanswered = true
        try await save(progress)
        let jobId: String
        do {
            jobId = try await request()
        } catch let error as CloudStackError where error.provesRequestRefused {
            progress.requestUnanswered = nil
            try await save(progress)
            throw error
        }
        progress.jobId = jobId
        progress.requestUnanswered = nil
        try await save(progress)
        return jobId
    }

    /// After an unanswered request (`resume` carries the mark and no job id): the progress
    /// with the job CloudStack runs for it, saved, when the object just listed shows one
    /// (`pendingJobId`); nil when no job is pending on it.
    ///
    /// A pending job of another command (someone else acting on the object) is not ours to
    /// wait on, and ours may still be queued behind it: a transient failure that keeps the
    /// mark, so the retry looks again.
    func adoptPendingJob<Progress: UnansweredRequestProgress>(
        resume: Progress?, pendingJobId: String?, on object: String, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void
    ) async throws -> Progress? {
        guard var progress = resume, progress.requestUnanswered == true, progress.jobId == nil else { return nil }
        guard let jobId = pendingJobId else {
            context.logger.notice("an earlier attempt's \(command) got no answer and no job is pending; looking at the \(object)")
            return nil
        }
        let job = try await environment.cloudStack.queryAsyncJobResult(jobId: jobId)
        guard Self.isJob(of: command, javaClass: job.command) else {
            throw VolumeOperationFailure(
                code: "cloudstack_other_job_pending",
                message: "\(object) has CloudStack job \(jobId) (\(job.command ?? "unknown command")) pending, and an earlier "
                    + "attempt's \(command) got no answer; the operation retries once that job has ended",
                isTransient: true)
        }
        context.logger.notice("adopting the job an unanswered \(command) started", metadata: ["object": "\(object)", "job_id": "\(jobId)"])
        progress.jobId = jobId
        progress.requestUnanswered = nil
        try await save(progress)
        return progress
    }

    /// Whether CloudStack's `cmd` (the Java class, user or admin spelling) runs `command`
    /// (see `CloudStackCommandClass`).
    static func isJob(of command: String, javaClass: String?) -> Bool {
        CloudStackCommandClass.runs(command, javaClass: javaClass)
    }
}
