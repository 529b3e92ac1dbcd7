import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// A proxy in front of CloudStack that gives up waiting: the command runs, but the worker gets
/// a bare 502 and cannot tell whether it did (`SimulatorFaults.replyLostRate`, on every
/// state-changing call for the whole test). No such reply may lead to the command being sent
/// again: the handler keeps its "request unanswered" mark, and its retry finds what the first
/// request did — the volume it made, or the job it started (listed on the volume while it
/// runs; jobs here run 500 ms, longer than the tests' retry backoff).
@Suite struct HandlerReplyLostTests {
    static let customer = SimulatorConfiguration.customerVMID
    static let proxyLosingReplies = SimulatorFaults(replyLostRate: 1)

    @Test func aCreateWhoseReplyWasLostMakesOneVolume() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(500), faults: Self.proxyLosingReplies) { h in
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("create", request: HandlerCreateTests.request(name: "behind-proxy", size: GiB)))
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.attempts >= 2, "the lost reply failed the first attempt")
            let state = await h.simulator.state()
            #expect(state.requestCounts["createVolume"] == 1)
            #expect(state.volumes.filter { $0.name == "behind-proxy" }.map(\.id) == [row.volumeId].compactMap { $0 })
        }
    }

    @Test("on its last attempt, a create whose reply was lost adopts the volume CloudStack made (issue 12 item 7)")
    func lastAttemptAdoptsTheVolume() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(500), faults: Self.proxyLosingReplies) { h in
            let worker = h.startWorker()
            let id = try await h.enqueue("create", request: HandlerCreateTests.request(name: "last-try", size: GiB), maxAttempts: 1)
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.attempts == 1)
            let state = await h.simulator.state()
            #expect(state.requestCounts["createVolume"] == 1)
            let made = state.volumes.filter { $0.name == "last-try" }.map(\.id)
            #expect(made.count == 1 && made == [row.volumeId].compactMap { $0 })
            #expect(try await h.db.scalar("SELECT count(*)::text FROM volumes WHERE name = 'last-try'") == "1")
        }
    }

    @Test func anAttachWhoseReplyWasLostIsSentOnce() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(500)) { h in
            let volumeId = try await h.cloudVolume()
            await h.simulator.setFaults(Self.proxyLosingReplies)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: Self.customer))
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.attempts >= 2, "the lost reply failed the first attempt")
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == Self.customer)
        }
    }

    @Test func aDetachWhoseReplyWasLostIsSentOnce() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(500)) { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: Self.customer)
            await h.simulator.setFaults(Self.proxyLosingReplies)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            try await worker.stop()

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == Self.customer)
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
        }
    }
}
