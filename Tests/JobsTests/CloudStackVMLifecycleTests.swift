import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import Operations
import Testing

/// stopVirtualMachine, startVirtualMachine and destroyVirtualMachine against the simulator,
/// through the typed client and on the wire: async jobs with CloudStack's shapes, the VM
/// states listVirtualMachines reports, and CloudStack's errors.
@Suite("CloudStack VM lifecycle")
struct CloudStackVMLifecycleTests {
    @Test("stop answers {\"stopvirtualmachineresponse\":{\"jobid\"}}; the VM is Stopping during the job, Stopped in its result")
    func stopIsAnAsyncJob() async throws {
        try await CloudStackHarness.with(asyncDelay: .milliseconds(300)) { harness in
            let vm = try await harness.simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "web-01", state: "Running"))
            let raw = try await harness.rawRequest([("command", "stopVirtualMachine"), ("id", vm.id), ("response", "json")])
            #expect(raw.status == 200)
            let jobId = try #require(try jobIdIn(raw.body, responseKey: "stopvirtualmachineresponse"))
            #expect(raw.body == #"{"stopvirtualmachineresponse":{"jobid":"\#(jobId)"}}"#)
            #expect(try await harness.client.listVirtualMachines(id: vm.id).first?.state == "Stopping")

            let result = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            #expect(result.virtualMachine?.id.value == vm.id)
            #expect(result.virtualMachine?.state == "Stopped")
            // The simulator's key is a root admin's by default (SimulatorFaults.accountRole).
            #expect(result.command == "org.apache.cloudstack.api.command.admin.vm.StopVMCmdByAdmin")
            #expect(try await harness.client.listVirtualMachines(id: vm.id).first?.state == "Stopped")
            let job = try await harness.rawRequest([("command", "queryAsyncJobResult"), ("jobid", jobId), ("response", "json")])
            #expect(job.body.contains(#""jobinstancetype":"VirtualMachine","jobinstanceid":"\#(vm.id)""#))
            #expect(job.body.contains(#""jobresult":{"virtualmachine":{"id":"\#(vm.id)""#))

            // Stopping a stopped VM is a success that changes nothing (VirtualMachineManagerImpl.advanceStop).
            let again = try await harness.client.waitForJob(
                jobId: try await harness.client.stopVirtualMachine(id: vm.id), timeout: .seconds(10))
            #expect(again.virtualMachine?.state == "Stopped")
            #expect(await harness.simulator.state().vmSideEffects(for: vm.id).stopVirtualMachine == 2)
        }
    }

    @Test("start turns a stopped VM Running and its disks Ready; starting a running VM fails 431 with CloudStack's text")
    func startAndAlreadyRunning() async throws {
        try await CloudStackHarness.with { harness in
            let vm = try await harness.simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "db-01", state: "Stopped", rootVolume: true))
            let data = try await harness.createVolume()
            #expect(try await harness.attach(data.id.value, to: vm.id).state == "Allocated")
            let raw = try await harness.rawRequest([("command", "startVirtualMachine"), ("id", vm.id), ("response", "json")])
            let jobId = try #require(try jobIdIn(raw.body, responseKey: "startvirtualmachineresponse"))
            let started = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            #expect(started.virtualMachine?.state == "Running")
            #expect(try await harness.client.listVolumes(id: data.id.value).first?.state == "Ready")

            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: try await harness.client.startVirtualMachine(id: vm.id), timeout: .seconds(10))
            })
            #expect(error.errorCode == 431)
            #expect(error.errorText == "The virtual machine \(vm.id) (db-01) is already running")
            #expect(error.code == "cloudstack_job_failed")
            #expect(!error.isTransient)
            #expect(await harness.simulator.state().vmSideEffects(for: vm.id).startVirtualMachine == 2)
        }
    }

    @Test("a VM without a ROOT volume cannot start: 533, no deployment")
    func startWithoutRoot() async throws {
        try await CloudStackHarness.with { harness in
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(
                    jobId: try await harness.client.startVirtualMachine(id: SimulatorConfiguration.testFailoverVMID), timeout: .seconds(10))
            })
            #expect(error.errorCode == 533)
            #expect(error.errorText?.hasPrefix("Unable to create a deployment for VM[User|") == true)
            #expect(try await harness.client.listVirtualMachines(id: SimulatorConfiguration.testFailoverVMID).first?.state == "Stopped")
        }
    }

    @Test("destroy detaches the data disks and keeps the ROOT; a destroyed VM cannot start; expunge removes VM and ROOT")
    func destroyAndExpunge() async throws {
        try await CloudStackHarness.with { harness in
            let vm = try await harness.simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "app-01", state: "Running"))
            let data = try await harness.createVolume()
            _ = try await harness.attach(data.id.value, to: vm.id)
            let root = try #require(try await harness.client.listVolumes(virtualMachineId: vm.id).first { $0.type == "ROOT" })

            let raw = try await harness.rawRequest([("command", "destroyVirtualMachine"), ("id", vm.id), ("response", "json")])
            let jobId = try #require(try jobIdIn(raw.body, responseKey: "destroyvirtualmachineresponse"))
            let destroyed = try await harness.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            #expect(destroyed.virtualMachine?.state == "Destroyed")
            #expect(try await harness.client.listVolumes(id: data.id.value).first?.virtualmachineid?.value == nil)
            #expect(try await harness.client.listVolumes(id: root.id.value).first?.virtualmachineid?.value == vm.id)

            // Destroying a destroyed VM (without expunge) returns it as it is.
            let again = try await harness.client.waitForJob(
                jobId: try await harness.client.destroyVirtualMachine(id: vm.id), timeout: .seconds(10))
            #expect(again.virtualMachine?.state == "Destroyed")
            let start = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: try await harness.client.startVirtualMachine(id: vm.id), timeout: .seconds(10))
            })
            #expect(start.errorCode == 530)
            #expect(start.errorText?.hasPrefix("Cannot start VM[User|i-2-") == true)
            #expect(start.errorText?.hasSuffix("in Destroyed state") == true)

            _ = try await harness.client.waitForJob(
                jobId: try await harness.client.destroyVirtualMachine(id: vm.id, expunge: true), timeout: .seconds(10))
            #expect(try await harness.client.listVirtualMachines(id: vm.id).isEmpty)
            #expect(try await harness.client.listVolumes(id: root.id.value).isEmpty)
            #expect(await harness.simulator.state().vmSideEffects(for: vm.id).destroyVirtualMachine == 3)

            // The expunged VM's id still resolves, but UserVmManagerImpl no longer finds it.
            for command in ["stop", "start", "destroy"] {
                let error = try #require(await expectCloudStackError {
                    let job = switch command {
                    case "stop": try await harness.client.stopVirtualMachine(id: vm.id)
                    case "start": try await harness.client.startVirtualMachine(id: vm.id)
                    default: try await harness.client.destroyVirtualMachine(id: vm.id)
                    }
                    _ = try await harness.client.waitForJob(jobId: job, timeout: .seconds(10))
                })
                #expect(error.errorCode == 431, "\(command)")
                #expect(error.errorText?.hasPrefix("unable to find a virtual machine with id ") == true, "\(command)")
                #expect(error.code == "cloudstack_not_found", "\(command)")
            }
        }
    }

    @Test("an unknown VM id is refused before any job: 431, nothing counted")
    func unknownVM() async throws {
        try await CloudStackHarness.with { harness in
            let unknown = UUID().uuidString.lowercased()
            let error = try #require(await expectCloudStackError { _ = try await harness.client.stopVirtualMachine(id: unknown) })
            #expect(error.httpStatus == 431)
            #expect(error.code == "cloudstack_not_found")
            #expect(error.jobId == nil)
            let raw = try await harness.rawRequest([("command", "startVirtualMachine"), ("response", "json")])
            #expect(raw.status == 431)
            #expect(raw.body.contains("Unable to execute API command startvirtualmachine due to missing parameter id"))
            #expect(await harness.simulator.state().vmSideEffects.isEmpty)
        }
    }

    @Test("a VM set to stick in Stopping never finishes a plain stop; a forced stop marks it Stopped")
    func sticksInStopping() async throws {
        try await CloudStackHarness.with { harness in
            // Added and faulted through the control endpoints, as a script would.
            let created = try await post(harness.simulator.baseURL + "/sim/vms", #"{"name":"hung-01","state":"Running"}"#)
            #expect(created.status == 201)
            let vm = try JSONDecoder().decode(SimulatorState.VirtualMachine.self, from: Data(created.body.utf8))
            #expect(vm.state == "Running")
            let faulted = try await post(harness.simulator.baseURL + "/sim/vms/\(vm.id)", #"{"sticks_in_stopping":true}"#)
            #expect(faulted.status == 200)
            #expect(await harness.simulator.state().virtualMachine(vm.id)?.sticksInStopping == true)

            let stuck = try await harness.client.stopVirtualMachine(id: vm.id)
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: stuck, timeout: .milliseconds(400))
            })
            #expect(error.code == "cloudstack_job_timeout")
            #expect(try await harness.client.listVirtualMachines(id: vm.id).first?.state == "Stopping")

            let forced = try await harness.client.waitForJob(
                jobId: try await harness.client.stopVirtualMachine(id: vm.id, forced: true), timeout: .seconds(10))
            #expect(forced.virtualMachine?.state == "Stopped")
            #expect(try await harness.client.queryAsyncJobResult(jobId: stuck).status == .pending)

            let refused = try await post(harness.simulator.baseURL + "/sim/vms", #"{"name":"x","state":"Paused"}"#)
            #expect(refused.status == 400)
            #expect(refused.body.contains("state must be Running or Stopped"))
        }
    }

    private func post(_ url: String, _ body: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(Array(body.utf8))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }
}

/// The job id under `responseKey` in an async command's reply.
func jobIdIn(_ body: String, responseKey: String) throws -> String? {
    let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
    return (object?[responseKey] as? [String: Any])?["jobid"] as? String
}
