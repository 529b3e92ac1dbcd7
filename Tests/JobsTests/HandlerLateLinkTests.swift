import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import Glibc
import Operations
import TestSupport
import Testing

/// Late udev links: the attach job succeeds before udev creates the by-id link, and the
/// detach job succeeds before udev removes it (`SimulatorFaults.linkCreateDelayMs`,
/// `linkRemoveDelayMs`; SimulatedCloud+LateLinks.swift). An attach is done once the link is
/// there; a detach only once it is gone.
@Suite struct HandlerLateLinkTests {
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    @Test func anAttachWaitsForALateLinkAndOneLaterThanItsWaitIsFoundByTheRetryWithoutASecondAttach() async throws {
        var faults = SimulatorFaults()
        faults.linkCreateDelayMs = 1200
        try await HandlerHarness.with(faults: faults, deviceWaitTimeout: .seconds(5)) { h in
            let volumeId = try await h.cloudVolume()
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            let worker = h.startWorker()
            let started = ContinuousClock.now
            let row = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(ContinuousClock.now - started >= .milliseconds(1200), "completed before the link existed")
            #expect(try await h.mapping(volumeId)?.byIdPath == link)
            #expect(try await h.mapping(volumeId)?.devicePath == h.backingFile(volumeId))
            #expect(row.attempts == 1)
            try await worker.stop()
        }

        // Later than the wait: the first attempt times out (transient), the retry finds the
        // volume attached and waits again, never sending attachVolume twice.
        faults.linkCreateDelayMs = 1800
        try await HandlerHarness.with(faults: faults, deviceWaitTimeout: .seconds(1)) { h in
            let volumeId = try await h.cloudVolume()
            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)
            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts >= 2, "the first wait (1 s) cannot have seen a link 1.8 s late")
            #expect(try await h.mapping(volumeId)?.byIdPath == h.simulator.byIDLinkPath(forVolumeID: volumeId))
            #expect(await h.sideEffects(volumeId).attachVolume == 1)
        }
    }

    @Test func aDetachIsNotDoneWhileTheLinkIsStillThere() async throws {
        var faults = SimulatorFaults()
        faults.linkRemoveDelayMs = 1500
        try await HandlerHarness.with(faults: faults) { h in
            let worker = h.startWorker()
            // Through volumed: the detach job succeeds 1.5 s before the link goes.
            let first = try await h.cloudVolume()
            try #require(try await h.finished(try await h.enqueue("attach", volume: first, vm: h.appliance)).status == "completed")
            let firstLink = try #require(h.simulator.byIDLinkPath(forVolumeID: first))
            let detached = try await h.finished(try await h.enqueue("detach", volume: first))
            #expect(detached.status == "completed", "\(detached.errorCode ?? ""): \(detached.error ?? "")")
            #expect(!Self.exists(firstLink), "detach completed while \(firstLink) was still present")

            // Detached behind volumed's back (someone in the UI, or a detach whose progress
            // was lost): CloudStack says detached, the link is still there. Not done yet.
            let second = try await h.cloudVolume()
            try await h.cloudAttach(second, to: h.appliance)
            let secondLink = try #require(h.simulator.byIDLinkPath(forVolumeID: second))
            try #require(Self.exists(secondLink))
            _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: second), timeout: .seconds(10))
            try #require(Self.exists(secondLink), "the simulator removed the link with the job")
            let row = try await h.finished(try await h.enqueue("detach", volume: second))
            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(!Self.exists(secondLink), "detach of a detached volume completed while \(secondLink) was still present")
            #expect(await h.sideEffects(second).detachVolume == 1, "no second detachVolume")
            try await worker.stop()
        }
    }

    @Test func aLinkThatStaysFailsTheDetachNamingIt() async throws {
        var faults = SimulatorFaults()
        faults.linkRemoveDelayMs = SimulatorFaults.maximumLinkDelayMs
        try await HandlerHarness.with(faults: faults, deviceWaitTimeout: .milliseconds(500)) { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            let id = try await h.enqueue("detach", volume: volumeId, maxAttempts: 1)
            let worker = h.startWorker()
            let row = try await h.finished(id)
            try await worker.stop()
            #expect(row.status == "failed")
            #expect(row.errorCode == "device_removal_timeout")
            #expect(row.error?.contains(link) == true, "\(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
        }
    }

    @Test func theLinkDelaysAreValidatedNamingTheField() async throws {
        try await HandlerHarness.with { h in
            for (body, field) in [(#"{"link_create_delay_ms":-1}"#, "link_create_delay_ms"),
                                  (#"{"link_remove_delay_ms":3600001}"#, "link_remove_delay_ms"),
                                  (#"{"link_delay_jitter_ms":-5}"#, "link_delay_jitter_ms")] {
                var request = HTTPClientRequest(url: h.simulator.baseURL + "/sim/faults")
                request.method = .POST
                request.body = .bytes(.init(string: body))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
                #expect(response.status.code == 400)
                #expect(text.contains("\(field) must be between 0 and 3600000"), "\(text)")
            }
            #expect(await h.simulator.faults() == SimulatorFaults(), "a refused change changes nothing")
        }
    }
}
