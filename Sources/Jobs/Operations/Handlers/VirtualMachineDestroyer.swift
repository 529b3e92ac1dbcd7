import Worker
import Schema

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

    /// The destroyVirtualMachine job, checkpointed before waiting on it, and whether CloudStack
    /// refused the expunge (so a resumed run destroys without it).
    struct Progress: Codable, Sendable, UnansweredRequestProgress {
        var jobId: String?
        var requestUnanswered: Bool?
        /// CloudStack refused `expunge=true` for this API key (`cloudstack_expunge_not_permitted`).
        var expungeRefused: Bool?

        init(jobId: String? = nil, requestUnanswered: Bool? = nil, expungeRefused: Bool? = nil) {
            self.jobId = jobId
            self.requestUnanswered = requestUnanswered
            self.expungeRefused = expungeRefused
        }

        enum CodingKeys: String, CodingKey {
            case jobId = "job_id"
            case requestUnanswered = "request_unanswered"
            case expungeRefused = "expunge_refused"
        }
    }

    /// What became of the VM.
    struct Outcome: Sendable, Equatable {
        /// Destroyed (now or before); false when kept because volumes volumed keeps are still on it.
        var destroyed: Bool
        /// Expunged too: gone from CloudStack rather than `Destroyed` (recoverable until
        /// `expunge.delay` passes).
        var expunged: Bool

        static let kept = Outcome(destroyed: false, expunged: false)
    }

    /// Destroys and expunges the VM, unless volumes volumed keeps are still attached to it.
    ///
    /// A key that may not expunge (UserVmManagerImpl.destroyVm: not an admin and
    /// `allow.user.expunge.recover.vm` off) gets the async 530 "Parameter expunge can be passed by
    /// Admin only…" before anything happened to the VM; the VM is then destroyed without
    /// expunge, and the outcome says so. `expunge` false leaves it recoverable on purpose (a VM
    /// the cleanup recovered goes back to the state it was found in).
    func destroy(
        vmId: String, expunge requested: Bool = true, resume: Progress?, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void
    ) async throws -> Outcome {
        let expunge = requested && resume?.expungeRefused != true
        if let jobId = resume?.jobId {
            return try await finish(vmId: vmId, jobId: jobId, expunge: expunge, context: context, save: save)
        }
        guard let vm = try await environment.cloudStack.virtualMachine(id: vmId) else {
            context.logger.debug("test VM already expunged", metadata: ["vm_id": "\(vmId)"])
            return Outcome(destroyed: true, expunged: true)
        }
        let request = AsyncJobRequest(environment: environment, command: "destroyVirtualMachine")
        if let adopted = try await request.adoptPendingJob(
            resume: resume, pendingJobId: vm.pendingJobId, on: "VM \(vmId)", context: context, save: save),
           let jobId = adopted.jobId
        {
            return try await finish(vmId: vmId, jobId: jobId, expunge: expunge, context: context, save: save)
        }
        if vm.state == "Destroyed" || vm.state == "Expunging" {
            return Outcome(destroyed: true, expunged: vm.state == "Expunging")
        }
        let kept = try await keptVolumes(on: vmId, context: context)
        guard kept.isEmpty else {
            context.logger.notice(
                "test VM still holds volumes volumed keeps; not destroying it (the cleanup that takes the last one off does)",
                metadata: ["vm_id": "\(vmId)", "volumes": "\(kept)"])
            return .kept
        }
        try context.checkCancellation()
        context.logger.info("destroying the test VM", metadata: ["vm_id": "\(vmId)", "expunge": "\(expunge)"])
        let jobId = try await request.send(Progress(expungeRefused: resume?.expungeRefused), save: save) {
            try await environment.cloudStack.destroyVirtualMachine(id: vmId, expunge: expunge)
        }
        return try await finish(vmId: vmId, jobId: jobId, expunge: expunge, context: context, save: save)
    }

    /// Waits on the destroy job; one that failed is accepted when the VM is gone or destroyed
    /// anyway, else forgotten (the retry destroys anew; after a job whose outcome is unknown the
    /// unanswered mark stays, so the retry looks first) and its error stands. A refused expunge
    /// destroys again without it, at once.
    private func finish(
        vmId: String, jobId: String, expunge: Bool, context: OperationContext, save: @Sendable (Progress) async throws -> Void
    ) async throws -> Outcome {
        guard case .ended(let error) = try await environment.waitForJob(jobId) else {
            return Outcome(destroyed: true, expunged: expunge)
        }
        let now = try await environment.cloudStack.virtualMachine(id: vmId)
        if now == nil || now?.state == "Expunging" { return Outcome(destroyed: true, expunged: true) }
        if now?.state == "Destroyed" { return Outcome(destroyed: true, expunged: false) }
        if error.code == "cloudstack_expunge_not_permitted" {
            context.logger.notice("CloudStack refused to expunge the test VM for this API key; destroying it without expunge",
                                  metadata: ["vm_id": "\(vmId)"])
            try await save(Progress(expungeRefused: true))
            return try await destroy(vmId: vmId, expunge: false, resume: Progress(expungeRefused: true), context: context, save: save)
        }
        try await save(Progress(requestUnanswered: error.leavesOutcomeUnknown ? true : nil, expungeRefused: expunge ? nil : true))
        throw error
    }

    /// The volumes on `vmId` that volumed created, adopted or mapped: never destroyed with it.
    private func keptVolumes(on vmId: String, context: OperationContext) async throws -> [String] {
        let attached = try await environment.cloudStack.listVolumes(virtualMachineId: vmId).map(\.id)
        guard !attached.isEmpty else { return [] }
        return try await context.database.rows(VolumesTable.kept(among: attached), logger: context.logger)
            .map { try $0.decode(String.self) }
    }
}
