import Foundation
import Logging
import PostgresNIO
import Schema
import Synchronization

/// Group commit for completions without mapping writes: while one UPDATE is in flight, the
/// completions that arrive wait and go in the next one. No delay is added at low load, and
/// at high load one statement (and one notifying commit) finishes a whole batch.
final class CompletionBatcher: Sendable {
    private struct Entry {
        let id: UUID
        let token: String
        let response: String
        let continuation: CheckedContinuation<Bool, any Error>
    }

    private let client: PostgresClient
    private let logger: Logger
    private let maximumBatch: Int
    private let buffer = Mutex<[Entry]>([])
    private let doorbell = Doorbell()

    init(client: PostgresClient, logger: Logger, maximumBatch: Int = 500) {
        self.client = client
        self.logger = logger
        self.maximumBatch = maximumBatch
    }

    /// Completes `id` with `response` under the claim `token`; true if that claim still held it
    /// (the row is now `completed`), false if its lease had been lost (nothing was changed).
    func complete(id: UUID, token: String, response: String) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            buffer.withLock { $0.append(Entry(id: id, token: token, response: response, continuation: continuation)) }
            doorbell.ring()
        }
    }

    /// The flush loop; runs until cancelled once nothing is left to flush.
    func run() async {
        while true {
            let batch = buffer.withLock { entries -> [Entry] in
                let count = min(entries.count, maximumBatch)
                let batch = Array(entries.prefix(count))
                entries.removeFirst(count)
                return batch
            }
            if batch.isEmpty {
                if Task.isCancelled { return }
                await doorbell.wait()
                continue
            }
            await flush(batch)
        }
    }

    private func flush(_ batch: [Entry]) async {
        do {
            let rows = try await client.rows(
                QueueSQL.completeBatch(ids: batch.map(\.id), tokens: batch.map(\.token), responses: batch.map(\.response)),
                logger: logger)
            let completed = Set(try rows.map { try $0.decode(UUID.self) })
            for entry in batch { entry.continuation.resume(returning: completed.contains(entry.id)) }
        } catch {
            for entry in batch { entry.continuation.resume(throwing: error) }
        }
    }
}
