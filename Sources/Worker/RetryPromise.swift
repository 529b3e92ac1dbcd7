import Foundation

/// A transient failure's message ends with a promise ("…; it will be retried", "…; the
/// operation will be retried") that is false once the queue gives up on it: the final
/// error says "gave up", never both.
public func withoutRetryPromise(_ message: String) -> String {
    message.replacingOccurrences(of: #"[;:,]?\s*(the \w+|it) will be retried\.?"#, with: "", options: .regularExpression)
}
