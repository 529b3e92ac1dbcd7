import Foundation
import Schema
import Synchronization

/// One LISTEN on `volume_operation_completed` shared by every waiter of a client: each
/// notification rings the bells of the waiters for its operation id, and every (re)connect
/// rings all of them (notifications sent while disconnected are lost, so all re-read).
final class CompletionWatcher: Sendable {
    private struct State {
        var listening = false
        var started = false
        var task: Task<Void, Never>?
        var nextToken = 0
        var waiters: [UUID: [Int: Doorbell]] = [:]
        var readyBells: [Doorbell] = []
    }
    private let state = Mutex(State())
    private let listener: ChannelListener

    init(listener: ChannelListener) {
        self.listener = listener
    }

    func subscribe(_ id: UUID, _ bell: Doorbell) -> Int {
        state.withLock { state in
            state.nextToken += 1
            state.waiters[id, default: [:]][state.nextToken] = bell
            return state.nextToken
        }
    }

    func unsubscribe(_ id: UUID, _ token: Int) {
        state.withLock { state in
            state.waiters[id]?[token] = nil
            if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
        }
    }

    /// Returns once LISTEN is active (or after `timeout`, when the database cannot be reached:
    /// the waiter then relies on its poll).
    func ensureListening(timeout: Duration) async {
        let bell = Doorbell()
        let (ready, startNow) = state.withLock { state -> (Bool, Bool) in
            if state.listening { return (true, false) }
            state.readyBells.append(bell)
            let start = !state.started
            state.started = true
            return (false, start)
        }
        if ready { return }
        if startNow {
            let task = Task { [listener] in
                await listener.run(
                    onListening: { [weak self] in self?.listening() },
                    onNotification: { [weak self] payload in self?.notified(payload) })
            }
            state.withLock { $0.task = task }
        }
        await bell.wait(timeout: timeout)
    }

    func stop() {
        let task = state.withLock { state -> Task<Void, Never>? in
            defer { state.task = nil; state.started = false; state.listening = false }
            return state.task
        }
        task?.cancel()
    }

    private func listening() {
        let bells = state.withLock { state -> [Doorbell] in
            state.listening = true
            let ready = state.readyBells
            state.readyBells = []
            return ready + state.waiters.values.flatMap { $0.values }
        }
        for bell in bells { bell.ring() }
    }

    private struct Payload: Decodable { let id: UUID }

    private func notified(_ payload: String) {
        guard let id = try? JSONDecoder().decode(Payload.self, from: Data(payload.utf8)).id else { return }
        let bells = state.withLock { state in state.waiters[id].map { Array($0.values) } ?? [] }
        for bell in bells { bell.ring() }
    }
}
