import CloudStack
/// How waiting on a CloudStack async job ended, for handlers that must look at reality
/// before deciding what a failed job means.
enum JobEnding: Sendable {
    case succeeded(AsyncJobResult)
    /// The job is over without success (failed or cancelled in CloudStack). Waiting on it
    /// again cannot help; the handler checks the volume, then either accepts what it finds
    /// or forgets the job id so the retry sends a new request.
    case ended(CloudStackError)
}

extension JobsEnvironment {
    /// Waits on a job checkpointed earlier. A job still running at `jobTimeout` throws the
    /// transient `cloudstack_job_timeout`, keeping the checkpoint, so the retry waits on
    /// the same job instead of starting a second one.
    func waitForJob(_ jobId: String) async throws -> JobEnding {
        do {
            return .succeeded(try await cloudStack.waitForJob(jobId: jobId, timeout: jobTimeout))
        } catch let error as CloudStackError where error.jobId == jobId && error.code != "cloudstack_job_timeout" {
            return .ended(error)
        }
    }
}
