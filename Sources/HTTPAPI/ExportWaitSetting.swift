/// `VOLUMED_HTTP_EXPORT_WAIT` (`volumed serve --export-wait`): whole seconds the export routes
/// wait for their operation, as the original daemon answered only once the export existed.
/// The operation keeps running after a 504; the bound only frees the caller's connection.
public enum ExportWaitSetting {
    public static let variable = "VOLUMED_HTTP_EXPORT_WAIT"
    public static let defaultSeconds = 60
    public static let allowedSeconds = 1...3600

    /// The wait from its text; nil text means the default.
    public static func parse(_ text: String?) throws -> Duration {
        guard let text, !text.isEmpty else { return .seconds(defaultSeconds) }
        guard let seconds = Int(text), allowedSeconds.contains(seconds) else {
            throw HTTPSettingsError(message: "\(variable) (--export-wait) must be a whole number of seconds from "
                + "\(allowedSeconds.lowerBound) to \(allowedSeconds.upperBound), e.g. 60 (got \"\(text)\"); unset it for the default of \(defaultSeconds)")
        }
        return .seconds(seconds)
    }
}
