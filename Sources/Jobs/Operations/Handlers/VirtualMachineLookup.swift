import CloudStack
/// Reading CloudStack's view of one VM: its state decides whether a stop, a root attach or
/// a destroy is needed or allowed.
extension CloudStackClient {
    /// The VM, or nil when CloudStack lists nothing for it (expunged).
    func virtualMachine(id: String) async throws -> CloudStackVirtualMachine? {
        try await listVirtualMachines(id: id).first { $0.id.lowercased() == id.lowercased() }
    }
}
