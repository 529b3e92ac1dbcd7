import Foundation

/// Runs blocking work (an inotify `poll(2)` that may last the whole timeout) on a thread
/// of its own, so it never holds an event loop or a thread of Swift's cooperative pool.
/// Cancelling the awaiting task fires the `CancellationSignal` handed to `body`, which
/// must watch it and return (typically by throwing `CancellationError`) promptly.
enum DedicatedThread {
    static func run<T: Sendable>(
        name: String,
        _ body: @escaping @Sendable (CancellationSignal) throws -> T
    ) async throws -> T {
        let signal = try CancellationSignal()
        // The body has returned before the continuation resumes, so closing here never
        // pulls the descriptor from under a running poll.
        defer { signal.close() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let thread = Thread {
                    continuation.resume(with: Result { try body(signal) })
                }
                thread.name = name
                thread.start()
            }
        } onCancel: {
            signal.fire()
        }
    }
}
