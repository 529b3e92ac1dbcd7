import Foundation

/// Jobs that end without running their command, and jobs that are deleted after they end —
/// what a client of a long-lived CloudStack meets (apache/cloudstack
/// `framework/jobs/src/main/java/org/apache/cloudstack/framework/jobs/impl/AsyncJobManagerImpl.java`):
///
/// - **Job GC cancel** (`SimulatorFaults.jobGCCancelRate`): the GC task cancels a job that has
///   blocked its sync queue longer than `job.cancel.threshold.minutes` with
///   `completeAsyncJob(id, FAILED, 0, "Job is cancelled as it has been blocking others for too long")`.
///   The job's thread is not stopped; here its work never completes (a hung agent call), and
///   the object stays as the job left it (a VM `Stopping`).
/// - **Management-server restart** (`jobRestartCancelRate`): `cleanupLeftOverJobs` fails every
///   job the server ran with `jobresultcode` 530 and "job cancelled because of management server
///   restart or shutdown", after `cleanupResources` moved the VM out of its transitional state
///   (`OperationFailed`: `Stopping` → `Running`, `Starting` → `Stopped`).
///
/// Both results are plain strings that `ApiSerializerHelper.fromSerializedString` cannot read
/// back (no `class/json` form), so `AsyncJobJoinDaoImpl.newAsyncJobResponse` sends neither
/// `jobresult` nor `jobresulttype` (`server/src/main/java/com/cloud/api/query/dao/AsyncJobJoinDaoImpl.java`).
///
/// - **Expiry** (`jobExpireSeconds`, `job.expire.minutes` in seconds): the GC task expunges jobs
///   that ended longer ago (`getExpiredCompletedJobs`, `expungeAsyncJob`); queryAsyncJobResult
///   for one then fails in ParamProcessWorker with 431 "…entity does not exist…". The simulator
///   keeps the record (marked `purged`) for `/sim/state`, but answers as CloudStack does.
extension SimulatedCloud {
    /// Whether a job that is not stuck will be abandoned at its due time, and how.
    func drawAbandonment() -> JobAbandonment? {
        if faults.jobGCCancelRate > 0, Double.random(in: 0..<1) < faults.jobGCCancelRate { return .gcCancel }
        if faults.jobRestartCancelRate > 0, Double.random(in: 0..<1) < faults.jobRestartCancelRate { return .restart }
        return nil
    }

    /// Ends the job at `index` as `how` says, without applying its effect.
    func abandon(jobAt index: Int, _ how: JobAbandonment) {
        jobs[index].status = 2
        jobs[index].resultCode = how == .restart ? APIErrorCode.internalError : 0
        jobs[index].result = nil
        jobs[index].completed = Date()
        if how == .restart, let vmID = jobs[index].action.virtualMachineID, let vm = vmIndex(vmID) {
            switch virtualMachines[vm].state {
            case "Stopping": virtualMachines[vm].state = "Running"
            case "Starting": virtualMachines[vm].state = "Stopped"
            default: break
            }
        }
        logger.debug("job abandoned", metadata: ["job_id": "\(jobs[index].id)", "how": "\(how.rawValue)"])
    }

    /// Marks jobs that ended more than `jobExpireSeconds` ago as purged.
    func purgeExpiredJobs(now: Date = Date()) {
        guard let seconds = faults.jobExpireSeconds else { return }
        let cutTime = now.addingTimeInterval(-TimeInterval(seconds))
        for index in jobs.indices where !jobs[index].purged && jobs[index].status != 0 {
            if let completed = jobs[index].completed, completed < cutTime {
                jobs[index].purged = true
            }
        }
    }
}

/// How CloudStack itself ended a job without its command finishing.
enum JobAbandonment: String, Sendable {
    /// AsyncJobManagerImpl's GC task: FAILED, result code 0.
    case gcCancel = "gc_cancel"
    /// `cleanupLeftOverJobs` after a management-server restart: FAILED, result code 530.
    case restart
}
