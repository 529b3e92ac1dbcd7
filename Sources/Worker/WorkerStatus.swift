/// A snapshot of one worker, for `GET /api/v1/health`.
public struct WorkerStatus: Sendable, Equatable {
    /// `claimed_by` of this worker's rows.
    public let name: String
    /// `starting` (start-up checks before the first claim), `running` (claiming), or
    /// `stopping` (SIGTERM: finishing or releasing in-flight operations, claiming nothing).
    public let phase: String
    /// Operations this worker holds right now.
    public let inFlight: Int
    public let concurrency: Int
}
