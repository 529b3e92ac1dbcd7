import Worker

/// Destroying (and expunging) a test-failover VM once it holds no volume volumed keeps.
///
/// CloudStack destroys a VM's ROOT volume with it and detaches its data disks first
/// (UserVmManagerImpl.destroyVm(DestroyVMCmd)), so a VM still holding a replicated volume is
/// never destroyed: with several volumes on one test VM, the cleanup that takes the last one
/// off destroys it. The destroy job's id is a value the caller checkpoints; destroyVirtualMachine
/// goes through `AsyncJobRequest`, so a worker killed before that checkpoint leaves a mark
/// the next one resolves by the job CloudStack lists on the VM.
struct VirtualMachineDestroyer: Sendable {
    let environment: JobsEnvironment

    /// The destroyVirtualMachine job, checkpointed before waiting on it.
    typealias Progress = JobProgress

    /// True when the VM is destroyed (now or before); false when it was kept because volumes
    /// volumed keeps are still attached to it. `expunge` false leaves it recoverable (a VM
    /// the cleanup recovered goes back to the state it was found in).
    func destroy(
        vmId: String, expunge: Bool = true, resume: Progress?, context: OperationContext, save: @Sendable (Progress) async throws -> Void
    ) async throws -> Bool {
        if let jobId = resume?.jobId {
            return try await finish(vmId: vmId, jobId: jobId, save: save)
        }
        guard let vm = try await environment.cloudStack.virtualMachine(id: vmId) else {
            context.logger.debug("test VM already expunged", metadata: ["vm_id": "\(vmId)"])
            return true
        }
        let request = AsyncJobRequest(environment: environment, command: "destroyVirtualMachine")
        if let adopted = try await request.adoptPendingJob(
            resume: resume, pendingJobId: vm.pendingJobId, on: "VM \(vmId)", context: context, save: save),
           let jobId = adopted.jobId
        {
            return try await finish(vmId: vmId, jobId: jobId, save: save)
        }
        if vm.state == "Destroyed" || vm.state == "Expunging" {
            return true
        }
        let kept = try await keptVolumes(on: vmId, context: context)
        guard kept.isEmpty else {
            context.logger.notice(
                "test VM still holds volumes volumed keeps; not destroying it (the cleanup that takes the last one off does)",
                metadata: ["vm_id": "\(vmId)", "volumes": "\(kept)"])
            return false
        }
        try context.checkCancellation()
        context.logger.info("destroying the test VM", metadata: ["vm_id": "\(vmId)"])
        let jobId = try await request.send(Progress(), save: save) {
            try await environment.cloudStack.destroyVirtualMachine(id: vmId, expunge: expunge)
        }
        return try await finish(vmId: vmId, jobId: jobId, save: save)
    }

    /// Waits on the destroy job; one that failed is accepted when the VM is gone or
    /// destroyed anyway, else forgotten (the retry destroys anew) and its error stands.
    private func finish(vmId: String, jobId: String, save: @Sendable (Progress) async throws -> Void) async throws -> Bool {
        if case .ended(let error) = try await environment.waitForJob(jobId) {
            let now = try await environment.cloudStack.virtualMachine(id: vmId)
            if now == nil || now?.state == "Destroyed" || now?.state == "Expunging" { return true }
            try await save(Progress())
            throw error
        }
        return true
    }

    /// The volumes on `vmId` that volumed created, adopted or mapped: never destroyed with it.
    private func keptVolumes(on vmId: String, context: OperationContext) async throws -> [String] {
        let attached = try await environment.cloudStack.listVolumes(virtualMachineId: vmId).map(\.id)
        guard !attached.isEmpty else { return [] }
        return try await context.database.rows(MappingSQL.keptVolumes(among: attached), logger: context.logger)
            .map { try $0.decode(String.self) }
    }
}
