import Logging
import Synchronization

/// Captures everything a logger logs, at trace level: to prove secrets stay out, and that
/// what should be logged is.
public final class LogRecorder: Sendable {
    public init() {}

    private let lines = Mutex<[String]>([])

    public func logger() -> Logger {
        var logger = Logger(label: "recorded") { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    public func append(_ line: String) { lines.withLock { $0.append(line) } }
    public var all: [String] { lines.withLock { $0 } }

    struct RecordingHandler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.append("\(event.level) \(event.message) \(merged)")
        }
    }
}

