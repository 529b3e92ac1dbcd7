import Foundation

/// The VM lifecycle commands as apache/cloudstack runs them:
/// `server/src/main/java/com/cloud/vm/UserVmManagerImpl.java` (stopVirtualMachine,
/// startVirtualMachine, destroyVm) and
/// `engine/orchestration/src/main/java/com/cloud/vm/VirtualMachineManagerImpl.java`
/// (advanceStop, changeToStartState). StopVMCmd, StartVMCmd and DestroyVMCmd are
/// BaseAsyncCmds: only the UUID is resolved before the job (ParamProcessWorker, 431 for an
/// unknown one); every other check runs inside the job, and the job's result is
/// `{"virtualmachine":{…}}` (UserVmResponse).
extension SimulatedCloud {
    // MARK: Inventory

    /// A VM record for `spec`, and its own ROOT volume when it has one.
    static func materialize(
        _ spec: SimulatorVirtualMachineSpec, vmInternalID: Int, rootInternalID: Int, now: Date
    ) -> (SimulatedVirtualMachine, SimulatedVolume?) {
        let vm = SimulatedVirtualMachine(
            id: (spec.id ?? UUID().uuidString).lowercased(), internalID: vmInternalID, name: spec.name, state: spec.state,
            instanceName: "i-2-\(vmInternalID)-VM", created: now, sticksInStopping: spec.sticksInStopping)
        guard spec.rootVolume ?? (spec.state == "Running") else { return (vm, nil) }
        let root = SimulatedVolume(
            id: UUID().uuidString.lowercased(), internalID: rootInternalID, name: "ROOT-\(vmInternalID)", type: "ROOT",
            sizeBytes: 20 * bytesPerGB, state: "Ready", virtualMachineID: vm.id, deviceID: 0, diskOfferingID: nil,
            created: now, attached: now)
        return (vm, root)
    }

    /// Adds a VM for a test (`POST /sim/vms`).
    func addVirtualMachine(_ spec: SimulatorVirtualMachineSpec) throws -> SimulatorState.VirtualMachine {
        if let problem = spec.problem(existingIDs: Set(virtualMachines.map(\.id))) {
            throw SimulatorRequestError(message: problem)
        }
        let (vm, root) = Self.materialize(spec, vmInternalID: nextVMInternalID, rootInternalID: nextInternalID, now: Date())
        nextVMInternalID += 1
        virtualMachines.append(vm)
        if let root {
            volumes.append(root)
            nextInternalID += 1
        }
        return stateView(vm)
    }

    /// Changes one VM's injected faults (`POST /sim/vms/{id}`).
    func setVirtualMachineFaults(id: String, _ faults: SimulatorVirtualMachineFaults) throws -> SimulatorState.VirtualMachine {
        guard let index = vmIndex(id.lowercased()), !virtualMachines[index].removed else {
            throw SimulatorRequestError(message: "no VM with id \(id)")
        }
        virtualMachines[index].sticksInStopping = faults.sticksInStopping
        return stateView(virtualMachines[index])
    }

    func stateView(_ vm: SimulatedVirtualMachine) -> SimulatorState.VirtualMachine {
        SimulatorState.VirtualMachine(id: vm.id, name: vm.name, state: vm.state, sticksInStopping: vm.sticksInStopping)
    }

    // MARK: Sync halves: resolve, count, start the job

    /// While CloudStack runs a stop job the VM shows `Stopping`; the simulator's job waits
    /// `asyncDelay`, so the VM turns `Stopping` as the job is accepted.
    func stopVirtualMachine(_ parameters: RequestParameters) throws -> JSONValue {
        let index = try resolveVM("stopVirtualMachine", parameter: "id", parameters["id"] ?? "")
        let forced = Self.booleanParameter(parameters["forced"])
        let vm = virtualMachines[index]
        recordVMSideEffect(vm.id) { $0.stopVirtualMachine += 1 }
        if vm.state == "Running" && !vm.removed {
            virtualMachines[index].state = "Stopping"
        }
        let job = startJob("stopVirtualMachine", action: .stopVirtualMachine(virtualMachineID: vm.id, forced: forced))
        return .object([("jobid", .string(job.id))])
    }

    func startVirtualMachine(_ parameters: RequestParameters) throws -> JSONValue {
        let index = try resolveVM("startVirtualMachine", parameter: "id", parameters["id"] ?? "")
        let vm = virtualMachines[index]
        recordVMSideEffect(vm.id) { $0.startVirtualMachine += 1 }
        if vm.state == "Stopped" && !vm.removed {
            virtualMachines[index].state = "Starting"
        }
        let job = startJob("startVirtualMachine", action: .startVirtualMachine(virtualMachineID: vm.id))
        return .object([("jobid", .string(job.id))])
    }

    func destroyVirtualMachine(_ parameters: RequestParameters) throws -> JSONValue {
        let index = try resolveVM("destroyVirtualMachine", parameter: "id", parameters["id"] ?? "")
        let expunge = Self.booleanParameter(parameters["expunge"])
        let vm = virtualMachines[index]
        recordVMSideEffect(vm.id) { $0.destroyVirtualMachine += 1 }
        let job = startJob("destroyVirtualMachine", action: .destroyVirtualMachine(virtualMachineID: vm.id, expunge: expunge))
        return .object([("jobid", .string(job.id))])
    }

    /// CommandType.BOOLEAN parameters go through `Boolean.valueOf`: only "true" (any case) is true.
    static func booleanParameter(_ text: String?) -> Bool {
        text?.lowercased() == "true"
    }

    // MARK: Async halves

    /// UserVmVO lookups use `_vmDao.findById`, which skips expunged rows: the UUID resolved,
    /// but the service then reports the internal id it could not find.
    private func liveVMIndex(_ vmID: String, notFound: (Int) -> String) throws -> Int {
        guard let index = vmIndex(vmID) else {
            throw JobFailure.invalidParameter(notFound(0))
        }
        guard !virtualMachines[index].removed else {
            throw JobFailure.invalidParameter(notFound(virtualMachines[index].internalID))
        }
        return index
    }

    /// UserVmManagerImpl.stopVirtualMachine → VirtualMachineManagerImpl.advanceStop. Nil: the
    /// job hangs (the VM sticks in `Stopping`).
    func runStop(vmID: String, forced: Bool) throws -> JSONValue? {
        let index = try liveVMIndex(vmID) { "unable to find a virtual machine with id \($0)" }
        let vm = virtualMachines[index]
        switch vm.state {
        case "Stopped", "Destroyed", "Expunging":
            // advanceStop: "VM is already stopped" / "Stopped called on … but the state is …".
            break
        case "Starting" where !forced:
            // StopRequested has no transition from Starting; only a forced stop cleans up.
            throw JobFailure.internalError("We cannot stop \(vm.logName) when it is in state Starting")
        default:
            if vm.sticksInStopping && !forced {
                virtualMachines[index].state = "Stopping"
                return nil
            }
            virtualMachines[index].state = "Stopped"
        }
        return ResponseRendering.virtualMachine(virtualMachines[index])
    }

    /// UserVmManagerImpl.startVirtualMachine, then changeToStartState and the deployment planner.
    func runStart(vmID: String) throws -> JSONValue {
        let index = try liveVMIndex(vmID) { "unable to find a virtual machine with id \($0)" }
        let vm = virtualMachines[index]
        if vm.state == "Running" {
            throw JobFailure.invalidParameter("The virtual machine \(vm.id) (\(vm.name)) is already running")
        }
        guard vm.state == "Stopped" || vm.state == "Starting" else {
            throw JobFailure.internalError("Cannot start \(vm.logName) in \(vm.state) state")
        }
        let disks = volumes.indices.filter { !volumes[$0].removed && volumes[$0].virtualMachineID == vm.id }
        guard disks.contains(where: { volumes[$0].deviceID == 0 }) else {
            // No ROOT volume: the planner finds no deployment (InsufficientServerCapacityException,
            // which StartVMCmd reports as INSUFFICIENT_CAPACITY_ERROR).
            virtualMachines[index].state = "Stopped"
            throw JobFailure(errorCode: APIErrorCode.insufficientCapacity, errorText: "Unable to create a deployment for \(vm.logName)")
        }
        for disk in disks { volumes[disk].state = "Ready" }
        virtualMachines[index].state = "Running"
        return ResponseRendering.virtualMachine(virtualMachines[index])
    }

    /// UserVmManagerImpl.destroyVm(DestroyVMCmd): an already destroyed VM is returned as it
    /// is unless expunging; otherwise the VM is stopped, its DATADISK volumes detached, and
    /// it turns `Destroyed` (its ROOT volume stays with it). With `expunge` the VM and its
    /// ROOT volume are removed. The result is the VM as destroyVm read it, `Destroyed`.
    /// Nil: the stop inside hangs.
    func runDestroy(vmID: String, expunge: Bool) throws -> JSONValue? {
        let index = try liveVMIndex(vmID) { "unable to find a virtual machine with id \($0)" }
        let vm = virtualMachines[index]
        if ["Destroyed", "Expunging"].contains(vm.state) && !expunge {
            return ResponseRendering.virtualMachine(vm)
        }
        if vm.state == "Running" || vm.state == "Stopping" {
            // stopVirtualMachine(vmId, VmDestroyForcestop = false)
            if vm.sticksInStopping {
                virtualMachines[index].state = "Stopping"
                return nil
            }
            virtualMachines[index].state = "Stopped"
        }
        for disk in volumes.indices where !volumes[disk].removed && volumes[disk].virtualMachineID == vm.id && volumes[disk].type == "DATADISK" {
            try unplugIfAppliance(disk)
            detachRecord(disk)
        }
        virtualMachines[index].state = "Destroyed"
        let destroyed = ResponseRendering.virtualMachine(virtualMachines[index])
        if expunge {
            virtualMachines[index].state = "Expunging"
            virtualMachines[index].removed = true
            for disk in volumes.indices where !volumes[disk].removed && volumes[disk].virtualMachineID == vm.id {
                volumes[disk].removed = true
                volumes[disk].state = "Expunged"
                if let hotPlug { try? hotPlug.destroyBackingFile(volumeID: volumes[disk].id) }
            }
        }
        return destroyed
    }
}

/// A `/sim/*` request the simulator cannot carry out; answered with 400 and the reason.
struct SimulatorRequestError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
