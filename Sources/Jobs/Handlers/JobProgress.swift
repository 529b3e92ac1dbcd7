/// A step's progress as its caller checkpoints it: the CloudStack async job the step
/// started, saved before waiting on it, so a resumed run waits on that job instead of
/// sending the request again. Attach, stop and destroy steps share it; `VolumeDetacher`
/// also keeps the VM the volume came off.
struct JobProgress: Codable, Sendable {
    var jobId: String?

    enum CodingKeys: String, CodingKey {
        case jobId = "job_id"
    }
}
