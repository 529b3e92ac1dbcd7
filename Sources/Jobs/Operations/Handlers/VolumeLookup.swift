import CloudStack
/// Reading CloudStack's view of one volume or VM: every handler looks at reality before
/// acting and again when a job it waited on failed.
extension CloudStackClient {
    /// The volume, or nil when CloudStack lists nothing for it (deleted, or expunged).
    func volume(id: CloudStackID) async throws -> CloudStackVolume? {
        try await listVolumes(id: id.value).first { $0.id == id }
    }

    /// The VM, or nil when CloudStack lists nothing for it (expunged).
    func virtualMachine(id: CloudStackID) async throws -> CloudStackVirtualMachine? {
        try await listVirtualMachines(id: id.value).first { $0.id == id }
    }
}
