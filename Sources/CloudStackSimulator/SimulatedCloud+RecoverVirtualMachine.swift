import Foundation

/// `recoverVirtualMachine`: RecoverVMCmd is a plain BaseCmd, answered synchronously with the
/// VM (`{"recovervirtualmachineresponse":{"virtualmachine":{…}}}`). apache/cloudstack
/// `server/src/main/java/com/cloud/vm/UserVmManagerImpl.java` `recoverVirtualMachine`: only a
/// `Destroyed` VM is recovered (RecoveryRequested → `Stopped`, its ROOT volume still attached);
/// any other state is InvalidParameterValueException "Vm with id <id> is not in the right
/// state", an expunged one "Unable to find vm by id <id>" (431 / 4350, internal ids).
///
/// This is what makes a destroyed test-failover VM's ROOT volume reachable again:
/// validateRootVolumeDetachAttach refuses to detach a ROOT volume from anything but a
/// `Stopped` VM (see `SimulatedCloud+Jobs.swift`, `detach`).
extension SimulatedCloud {
    func recoverVirtualMachine(_ parameters: RequestParameters) throws -> JSONValue {
        let index = try resolveVM("recoverVirtualMachine", parameter: "id", parameters["id"] ?? "")
        let vm = virtualMachines[index]
        if vm.removed {
            throw APIFailure.invalidParameter("Unable to find vm by id \(vm.internalID)")
        }
        guard vm.state == "Destroyed" else {
            throw APIFailure.invalidParameter("Vm with id \(vm.internalID) is not in the right state")
        }
        recordVMSideEffect(vm.id) { $0.recoverVirtualMachine += 1 }
        virtualMachines[index].state = "Stopped"
        return .object([("virtualmachine", ResponseRendering.virtualMachine(virtualMachines[index]))])
    }
}
