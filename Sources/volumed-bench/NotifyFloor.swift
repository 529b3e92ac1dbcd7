import Foundation
import Logging
import PostgresNIO
import Synchronization

/// PostgreSQL's own floor for `volumed-bench latency`, on the same server and client library:
///
/// - one: an UPDATE with `pg_notify`, its durable commit, and a listener on another connection
///   woken by it, from the statement's send (what a waiter's wake-up costs after a completion's
///   statement is sent);
/// - relayed: the least a queue with a durable claim can do between an enqueue's commit and its
///   waiter's wake-up: a relay connection woken by the enqueue's notification commits one
///   UPDATE (the claim), then a second with `pg_notify` (the completion), and the waiter wakes.
///   No queue logic: each statement touches one row of a one-row table. Timed from the
///   enqueue's reply, as `volumed-bench latency` times volumed.
struct NotifyFloor {
    let configuration: PostgresConnection.Configuration
    let rate: Int
    let count: Int
    let logger: Logger

    func measure() async throws -> (one: [Double], relayed: [Double]) {
        let setup = try await PostgresConnection.connect(configuration: configuration, id: 10, logger: logger)
        try await setup.query("CREATE TABLE IF NOT EXISTS volumed_bench_floor (id int PRIMARY KEY, v bigint NOT NULL)", logger: logger)
        try await setup.query("INSERT INTO volumed_bench_floor VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING", logger: logger)
        let one = try await run(relay: false)
        let relayed = try await run(relay: true)
        try await setup.query("DROP TABLE volumed_bench_floor", logger: logger)
        try await setup.close()
        return (one, relayed)
    }

    /// Milliseconds from each enqueue statement's reply to the waiter's wake-up, sorted.
    private func run(relay: Bool) async throws -> [Double] {
        let writer = try await PostgresConnection.connect(configuration: configuration, id: 11, logger: logger)
        let waiter = try await PostgresConnection.connect(configuration: configuration, id: 12, logger: logger)
        let relayListener = try await PostgresConnection.connect(configuration: configuration, id: 13, logger: logger)
        let relayWriter = try await PostgresConnection.connect(configuration: configuration, id: 14, logger: logger)
        let sent = IndexedInstants()
        let woken = IndexedInstants()
        let count = self.count, logger = self.logger
        try await waiter.listen(on: "volumed_bench_floor_done") { done in
            try await relayListener.listen(on: "volumed_bench_floor_enqueued") { enqueued in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    if relay {
                        group.addTask {
                            for try await notification in enqueued {
                                try await relayWriter.query("UPDATE volumed_bench_floor SET v = v + 1 WHERE id = 2", logger: logger)
                                try await relayWriter.query("""
                                    UPDATE volumed_bench_floor SET v = v + 1 WHERE id = 2
                                    RETURNING pg_notify('volumed_bench_floor_done', \(notification.payload))
                                    """, logger: logger)
                            }
                        }
                    }
                    group.addTask {
                        for try await notification in done {
                            let now = ContinuousClock.now
                            guard let index = Int(notification.payload) else { continue }
                            if woken.map.withLock({ $0[index] = now; return $0.count }) == count { return }
                        }
                    }
                    let channel = relay ? "volumed_bench_floor_enqueued" : "volumed_bench_floor_done"
                    let interval = Duration.seconds(1) / rate
                    var next = ContinuousClock.now
                    for index in 0..<count {
                        try await Task.sleep(until: next, clock: .continuous)
                        next += interval
                        // One commit: from the statement's send (its notification is delivered at
                        // commit, before the reply). Relayed: from the reply, as volumed's latency.
                        let beforeSend = ContinuousClock.now
                        try await writer.query("""
                            UPDATE volumed_bench_floor SET v = v + 1 WHERE id = 1
                            RETURNING pg_notify(\(channel), \(String(index)))
                            """, logger: logger)
                        let now = relay ? ContinuousClock.now : beforeSend
                        sent.map.withLock { $0[index] = now }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
        for connection in [writer, waiter, relayListener, relayWriter] { try await connection.close() }
        let starts = sent.map.withLock { $0 }
        let ends = woken.map.withLock { $0 }
        return starts.compactMap { index, start in ends[index].map { max(0, ($0 - start).seconds * 1000) } }.sorted()
    }
}

private final class IndexedInstants: Sendable {
    let map = Mutex<[Int: ContinuousClock.Instant]>([:])
}
