import Worker

/// `VOLUMED_CLOUDSTACK_JOB_TIMEOUT`: whole seconds a handler waits on one CloudStack async
/// job before giving up with the transient `cloudstack_job_timeout`. The job id stays in the
/// checkpoint, so the retry waits on the same job; a short timeout only means more, shorter
/// waits, never a repeated side effect.
public enum JobTimeoutSetting {
    public static let variable = "VOLUMED_CLOUDSTACK_JOB_TIMEOUT"
    public static let defaultSeconds = 600
    public static let allowedSeconds = 1...86_400

    public static func fromEnvironment(_ environment: [String: String]) throws -> Duration {
        guard let text = environment[variable], !text.isEmpty else { return .seconds(defaultSeconds) }
        guard let seconds = Int(text), allowedSeconds.contains(seconds) else {
            throw QueueFailure(
                code: "invalid_configuration",
                message: "\(variable) must be a whole number of seconds between \(allowedSeconds.lowerBound) and "
                    + "\(allowedSeconds.upperBound) (got \(text)); unset it for the default of \(defaultSeconds)")
        }
        return .seconds(seconds)
    }
}
