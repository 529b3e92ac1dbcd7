import CloudStack
import Synchronization
import Worker

/// One CloudStack async command on one object, run at most once however often the worker
/// dies: the step every handler that changes CloudStack is made of (`AttachVolume`,
/// `DetachVolume`, `StopVirtualMachine`, `DestroyVirtualMachine`, `CreateHandler`'s
/// `CreateVolume`). An action says only what is particular to it (its command, its "already
/// done?" look at the object, its request, what its job's ending means); the step owns the
/// protocol and the progress it checkpoints:
///
/// 1. A saved job id is waited on again, never requested anew.
/// 2. Otherwise the object is listed. After a request whose answer was never read
///    (`request_unanswered`), the job CloudStack lists as pending on the object (its
///    `jobid` / `jobstatus` 0, see `ListedWithPendingJob`) is adopted when it runs this
///    command; a job of another command is transient `cloudstack_other_job_pending`.
/// 3. The action decides from the object: done already, send, or look again later.
/// 4. Sending saves `request_unanswered` first. CloudStack answering with its own error
///    (`provesRequestRefused`) clears it; any other failure keeps it. The job id replaces it.
/// 5. A job that ended without success is judged by the object: done anyway, or forgotten
///    (`StepProgress.forgettingJob`) so the retry may send again; a job whose outcome is
///    unknown (`leavesOutcomeUnknown`) leaves the mark instead, so the retry looks first.
/// 6. A job still running at `jobTimeout` is the transient `cloudstack_job_timeout`, keeping
///    its id, so the retry waits on the same job.
protocol CloudStackAction: Sendable {
    associatedtype Object: ListedWithPendingJob & Sendable
    associatedtype Result: Sendable

    var environment: OperationEnvironment { get }
    var context: OperationContext { get }
    /// The API command, e.g. `attachVolume`.
    var command: String { get }
    /// The object acted on, for messages: "volume 3f…".
    var object: String { get }
    /// A time limit for the whole step (the stop's): a job still running then is not an error
    /// but a reason to look at the object again. Nil: each wait lasts `jobTimeout`.
    var timeLimit: Duration? { get }

    /// CloudStack's view of the object now; nil when it lists nothing.
    func look(_ progress: StepProgress) async throws -> Object?
    /// With no job of ours to wait on: done already, a request to send, or a pause.
    func decide(_ object: Object?, _ progress: StepProgress) async throws -> StepNext<Result>
    /// The job waited on is over.
    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<Result>
    /// What CloudStack refusing the request means here (the mark is cleared by then).
    func refused(_ error: CloudStackError) -> any Error
}

extension CloudStackAction {
    var timeLimit: Duration? { nil }
    func refused(_ error: CloudStackError) -> any Error { error }

    /// Runs the action as a step whose progress lives in `slot`.
    func run(in slot: StepSlot) async throws -> Result {
        try await CloudStackStep(action: self, slot: slot).run()
    }
}

/// What a step does next, as its action decides.
enum StepNext<Result: Sendable>: Sendable {
    /// Finished; `saving` is progress worth showing meanwhile (an attach awaiting its link).
    case done(Result, saving: StepProgress? = nil)
    /// Send the command, `progress` noting what the action needs to judge its job later.
    case send(StepProgress, request: @Sendable () async throws -> AcceptedRequest)
    /// Look at the object again now, without waiting on the job first.
    case look(saving: StepProgress? = nil)
    /// Look at the object again after a pause (growing from 100 ms to 2 s), or past the
    /// action's `timeLimit` (which an action that polls has) give up with `pastTimeLimit`.
    case poll(pastTimeLimit: any Error)
    /// Give up with `error`, after saving `saving`.
    case fail(any Error, saving: StepProgress)
}

/// What CloudStack answered an async command with: its job, and for createVolume the volume.
struct AcceptedRequest: Sendable {
    var jobId: String
    var volumeId: CloudStackID? = nil
}

/// How waiting on a job ended, for the action to judge by the object.
enum JobEnding: Sendable {
    case succeeded(AsyncJobResult)
    /// Failed, cancelled, abandoned or purged: waiting on it again cannot help.
    case failed(CloudStackError)
}

/// A step's progress in the operation's checkpoint: the whole checkpoint of `attach`,
/// `detach` and `create`, one key of `cleanup`'s (`stop`, `detach`, `attach`, `destroy`) and
/// `delete`'s (`detach`). `OperationStep` reads it to tell an operator what the step waits on.
struct StepProgress: Codable, Sendable, Equatable {
    /// The async job CloudStack answered with, saved before waiting on it.
    var jobId: String?
    /// The request was sent and no answer was read: CloudStack may be running a job for it.
    var requestUnanswered: Bool?
    /// Attach to the appliance: the job succeeded and the operation waits for the by-id link
    /// (read by `OperationStep` only; resuming depends on `job_id`).
    var awaitingByIdLink: Bool?
    /// Detach: the VM the volume comes off (after the job CloudStack no longer says).
    var vmId: CloudStackID?
    /// Detach: this job is the second detachVolume, sent after the guest released the disk
    /// following a KVM detach timeout; its own timeout is not answered with a third.
    var resentAfterRelease: Bool?
    /// Create: the volume createVolume made, or the one an unanswered createVolume made.
    var volumeId: CloudStackID?
    /// Destroy: CloudStack refused `expunge=true` for this API key; destroy without it.
    var expungeRefused: Bool?

    enum CodingKeys: String, CodingKey {
        case jobId = "job_id"
        case requestUnanswered = "request_unanswered"
        case awaitingByIdLink = "awaiting_by_id_link"
        case vmId = "vm_id"
        case resentAfterRelease = "resent_after_release"
        case volumeId = "volume_id"
        case expungeRefused = "expunge_refused"
    }

    /// After `error` ended the job without the object showing the work done: the job is
    /// forgotten (the retry may send anew). An unknown outcome keeps the mark, and with it
    /// the VM a detach was sent for, so the retry looks before sending. A refused expunge stays.
    func forgettingJob(after error: CloudStackError) -> StepProgress {
        let unknown = error.leavesOutcomeUnknown
        return StepProgress(requestUnanswered: unknown ? true : nil, vmId: unknown ? vmId : nil, expungeRefused: expungeRefused)
    }
}

/// Where a step keeps its progress: what an earlier attempt saved there, and how to save it.
struct StepSlot: Sendable {
    var resume: StepProgress?
    let save: @Sendable (StepProgress) async throws -> Void

    /// The operation's whole checkpoint is the step's progress.
    static func checkpoint(of context: OperationContext) throws -> StepSlot {
        StepSlot(resume: try context.checkpoint(as: StepProgress.self), save: { try await context.saveCheckpoint($0) })
    }
}

/// A checkpoint with several steps' progress (cleanup's, delete's), changed one field at a
/// time, each change saved before the handler goes on.
final class CheckpointWriter<Checkpoint: Codable & Sendable>: Sendable {
    let context: OperationContext
    private let value: Mutex<Checkpoint>

    init(context: OperationContext, empty: Checkpoint) throws {
        self.context = context
        self.value = Mutex(try context.checkpoint(as: Checkpoint.self) ?? empty)
    }

    var current: Checkpoint { value.withLock { $0 } }

    func update(_ change: (inout Checkpoint) -> Void) async throws {
        let next = value.withLock { checkpoint -> Checkpoint in
            change(&checkpoint)
            return checkpoint
        }
        try await context.saveCheckpoint(next)
    }

    /// The slot `field` of the checkpoint is.
    func slot(_ field: WritableKeyPath<Checkpoint, StepProgress?> & Sendable) -> StepSlot {
        StepSlot(resume: current[keyPath: field], save: { progress in try await self.update { $0[keyPath: field] = progress } })
    }
}

/// The protocol of `CloudStackAction`, run for one action in one slot.
struct CloudStackStep<Action: CloudStackAction>: Sendable {
    let action: Action
    let slot: StepSlot

    private var cloudStack: CloudStackClient { action.environment.cloudStack }
    private var context: OperationContext { action.context }

    func run() async throws -> Action.Result {
        var progress = slot.resume ?? StepProgress()
        // An unanswered request is looked for once, at the first listing.
        var unanswered = progress.requestUnanswered == true && progress.jobId == nil
        var lookNow = false
        var pause = Duration.milliseconds(100)
        let deadline = action.timeLimit.map { ContinuousClock.now.advanced(by: $0) }
        while true {
            let next: StepNext<Action.Result>
            if let jobId = progress.jobId, !lookNow {
                next = try await waitOn(jobId, progress, until: deadline)
            } else {
                lookNow = false
                let object = try await action.look(progress)
                if unanswered {
                    unanswered = false
                    if let adopted = try await adopt(object?.pendingJobId, progress) {
                        progress = adopted
                        continue
                    }
                }
                next = try await action.decide(object, progress)
            }
            switch next {
            case .done(let result, let saving):
                if let saving { try await slot.save(saving) }
                return result
            case .fail(let error, let saving):
                try await slot.save(saving)
                throw error
            case .look(let saving):
                if let saving {
                    progress = saving
                    try await slot.save(saving)
                }
                lookNow = true
            case .send(let noted, let request):
                try context.checkCancellation()
                progress = try await send(noted, request)
            case .poll(let pastTimeLimit):
                let remaining = ContinuousClock.now.duration(to: deadline ?? .now)
                guard remaining > .zero else { throw pastTimeLimit }
                try context.checkCancellation()
                try await Task.sleep(for: min(pause, remaining))
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    /// Waits on the job and lets the action judge how it ended. Past the step's deadline (or
    /// at it) the object is looked at instead.
    private func waitOn(_ jobId: String, _ progress: StepProgress, until deadline: ContinuousClock.Instant?)
        async throws -> StepNext<Action.Result>
    {
        var timeout = action.environment.jobTimeout
        if let deadline {
            timeout = ContinuousClock.now.duration(to: deadline)
            guard timeout > .zero else { return .look() }
        }
        let ending: JobEnding
        do {
            ending = .succeeded(try await cloudStack.waitForJob(jobId: jobId, timeout: timeout))
        } catch let error as CloudStackError where error.jobId == jobId {
            guard error.kind != .jobTimeout else {
                if deadline != nil { return .look() }
                throw error
            }
            ending = .failed(error)
        }
        return try await action.ended(ending, progress)
    }

    /// After an unanswered request: the progress with the job CloudStack runs for it, saved,
    /// or nil when no job is pending on the object. A pending job of another command is not
    /// ours to wait on, and ours may still be queued behind it: transient, keeping the mark.
    private func adopt(_ pendingJobId: String?, _ progress: StepProgress) async throws -> StepProgress? {
        guard let jobId = pendingJobId else {
            context.logger.notice("an earlier attempt's \(action.command) got no answer and no job is pending; looking at the \(action.object)")
            return nil
        }
        let job = try await cloudStack.queryAsyncJobResult(jobId: jobId)
        guard CloudStackCommandClass.runs(action.command, javaClass: job.command) else {
            throw VolumeOperationFailure(
                code: "cloudstack_other_job_pending",
                message: "\(action.object) has CloudStack job \(jobId) (\(job.command ?? "unknown command")) pending, and an earlier "
                    + "attempt's \(action.command) got no answer; the operation retries once that job has ended",
                isTransient: true)
        }
        context.logger.notice("adopting the job an unanswered \(action.command) started",
                              metadata: ["object": "\(action.object)", "job_id": "\(jobId)"])
        var adopted = progress
        adopted.jobId = jobId
        adopted.requestUnanswered = nil
        try await slot.save(adopted)
        return adopted
    }

    /// Sends the request with the mark saved first; returns the progress with its job, saved.
    private func send(_ noted: StepProgress, _ request: @Sendable () async throws -> AcceptedRequest) async throws -> StepProgress {
        var progress = noted
        progress.jobId = nil
        progress.requestUnanswered = true
        try await slot.save(progress)
        let accepted: AcceptedRequest
        do {
            accepted = try await request()
        } catch let error as CloudStackError where error.provesRequestRefused {
            progress.requestUnanswered = nil
            try await slot.save(progress)
            throw action.refused(error)
        }
        progress.requestUnanswered = nil
        progress.jobId = accepted.jobId
        progress.volumeId = accepted.volumeId ?? progress.volumeId
        try await slot.save(progress)
        return progress
    }
}
