import Foundation
import Logging
import Schema
import Synchronization

/// Tells every open console that something changed, within a second, for as long as at least
/// one is open (nothing runs while none is):
///
/// - LISTEN on `volume_operation_completed` and `volume_operation_pending` (`ChannelListener`,
///   one session connection each): inserts, retries and finished operations, at commit;
/// - a 1 s poll of a fingerprint of the unfinished rows, for what sends no notification
///   (a claim, a checkpoint, a cancel request) and for notifications lost while a LISTEN
///   connection reconnects.
///
/// Each console gets `.changed` (debounced: a burst of completions is one refresh) and a
/// `.keepalive` every few seconds, so a page notices a dead connection.
final class ConsoleChangeFeed: Sendable {
    enum Signal: Sendable { case changed, keepalive }

    private struct State {
        var subscribers: [Int: AsyncStream<Signal>.Continuation] = [:]
        var nextToken = 0
        var task: Task<Void, Never>?
    }
    private let state = Mutex(State())
    private let database: DatabaseURL?
    private let reads: ConsoleReads
    private let logger: Logger
    let pollInterval: Duration
    let keepaliveEvery: Int

    init(database: DatabaseURL?, reads: ConsoleReads, logger: Logger,
         pollInterval: Duration = .seconds(1), keepaliveEvery: Int = 5) {
        self.database = database
        self.reads = reads
        self.logger = logger
        self.pollInterval = pollInterval
        self.keepaliveEvery = keepaliveEvery
    }

    /// A stream of signals for one console; call `unsubscribe` with the token when it closes.
    func subscribe() -> (AsyncStream<Signal>, Int) {
        let (stream, continuation) = AsyncStream<Signal>.makeStream(bufferingPolicy: .bufferingNewest(2))
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            state.subscribers[state.nextToken] = continuation
            if state.task == nil { state.task = Task { await self.run() } }
            return state.nextToken
        }
        return (stream, token)
    }

    func unsubscribe(_ token: Int) {
        let (continuation, task) = state.withLock { state -> (AsyncStream<Signal>.Continuation?, Task<Void, Never>?) in
            let continuation = state.subscribers.removeValue(forKey: token)
            guard state.subscribers.isEmpty else { return (continuation, nil) }
            defer { state.task = nil }
            return (continuation, state.task)
        }
        continuation?.finish()
        task?.cancel()
    }

    private func broadcast(_ signal: Signal) {
        let continuations = state.withLock { Array($0.subscribers.values) }
        for continuation in continuations { continuation.yield(signal) }
    }

    private func run() async {
        await withTaskGroup(of: Void.self) { group in
            if let database {
                for channel in ["volume_operation_completed", "volume_operation_pending"] {
                    let listener = ChannelListener(database: database, channel: channel, logger: logger)
                    group.addTask {
                        // A (re)connected LISTEN may have missed notifications: refresh too.
                        await listener.run(onListening: { self.broadcast(.changed) },
                                           onNotification: { _ in self.broadcast(.changed) })
                    }
                }
            }
            group.addTask { await self.poll() }
            await group.waitForAll()
        }
    }

    private func poll() async {
        var last: String?
        var ticks = 0
        while !Task.isCancelled {
            do {
                let fingerprint = try await reads.unfinishedFingerprint()
                if let last, last != fingerprint { broadcast(.changed) }
                last = fingerprint
            } catch {
                // The pages notice on their next fetch; keep polling.
                logger.debug("console fingerprint poll failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            ticks += 1
            if ticks % keepaliveEvery == 0 { broadcast(.keepalive) }
            try? await Task.sleep(for: pollInterval)
        }
    }
}
