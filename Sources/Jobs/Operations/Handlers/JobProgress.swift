/// A step's progress as its caller checkpoints it: the CloudStack async job the step
/// started, saved before waiting on it, so a resumed run waits on that job instead of
/// sending the request again. Attach, stop and destroy steps share it; `VolumeDetacher`
/// also keeps the VM the volume came off.
///
/// `request_unanswered` (added later; checkpoints without it decode as before) marks a
/// request sent whose answer was never read (see `AsyncJobRequest`).
///
/// `awaiting_by_id_link` (attach to the appliance only) says the job succeeded and the step
/// now waits for the disk's by-id link. Only `OperationStep` reads it, to tell an operator
/// which wait a long attach is in; resuming depends on `job_id` alone.
struct JobProgress: Codable, Sendable, UnansweredRequestProgress {
    var jobId: String?
    var requestUnanswered: Bool?
    var awaitingByIdLink: Bool?

    init(jobId: String? = nil, requestUnanswered: Bool? = nil, awaitingByIdLink: Bool? = nil) {
        self.jobId = jobId
        self.requestUnanswered = requestUnanswered
        self.awaitingByIdLink = awaitingByIdLink
    }

    enum CodingKeys: String, CodingKey {
        case jobId = "job_id"
        case requestUnanswered = "request_unanswered"
        case awaitingByIdLink = "awaiting_by_id_link"
    }
}
