import CloudStack
import Schema
import Worker

/// destroyVirtualMachine (and expunge) as a `CloudStackStep`: a test-failover VM goes once
/// it holds no volume volumed keeps.
///
/// CloudStack destroys a VM's ROOT volume with it and detaches its data disks first
/// (UserVmManagerImpl.destroyVm(DestroyVMCmd)), so a VM still holding a replicated volume is
/// never destroyed: with several volumes on one test VM, the cleanup that takes the last one
/// off destroys it.
///
/// A key that may not expunge (UserVmManagerImpl.destroyVm: not an admin and
/// `allow.user.expunge.recover.vm` off) gets the async 530 "Parameter expunge can be passed by
/// Admin only…" before anything happened to the VM; the VM is then destroyed without
/// expunge (`expunge_refused`), and the outcome says so. `expunge` false leaves it
/// recoverable on purpose (a VM the cleanup recovered goes back to the state it was found in).
struct DestroyVirtualMachine: CloudStackAction {
    let environment: OperationEnvironment
    let context: OperationContext
    let vmId: CloudStackID
    /// Expunge too, unless CloudStack refuses it to this key.
    var expunge = true

    /// What became of the VM.
    struct Outcome: Sendable, Equatable {
        /// Destroyed (now or before); false when kept because volumes volumed keeps are still on it.
        var destroyed: Bool
        /// Expunged too: gone from CloudStack rather than `Destroyed` (recoverable until
        /// `expunge.delay` passes).
        var expunged: Bool

        static let kept = Outcome(destroyed: false, expunged: false)
    }

    var command: String { "destroyVirtualMachine" }
    var object: String { "VM \(vmId)" }

    private func expunges(_ progress: StepProgress) -> Bool { expunge && progress.expungeRefused != true }

    func look(_ progress: StepProgress) async throws -> CloudStackVirtualMachine? {
        try await environment.cloudStack.virtualMachine(id: vmId)
    }

    func decide(_ vm: CloudStackVirtualMachine?, _ progress: StepProgress) async throws -> StepNext<Outcome> {
        guard let vm else {
            context.logger.debug("test VM already expunged", metadata: ["vm_id": "\(vmId)"])
            return .done(Outcome(destroyed: true, expunged: true))
        }
        if vm.state == "Destroyed" || vm.state == "Expunging" {
            return .done(Outcome(destroyed: true, expunged: vm.state == "Expunging"))
        }
        let kept = try await keptVolumes()
        guard kept.isEmpty else {
            context.logger.notice(
                "test VM still holds volumes volumed keeps; not destroying it (the cleanup that takes the last one off does)",
                metadata: ["vm_id": "\(vmId)", "volumes": "\(kept)"])
            return .done(.kept)
        }
        let expunge = expunges(progress)
        context.logger.info("destroying the test VM", metadata: ["vm_id": "\(vmId)", "expunge": "\(expunge)"])
        return .send(StepProgress(expungeRefused: progress.expungeRefused)) {
            AcceptedRequest(jobId: try await environment.cloudStack.destroyVirtualMachine(id: vmId.value, expunge: expunge))
        }
    }

    /// A failed job is accepted when the VM is gone or destroyed anyway; a refused expunge
    /// destroys again without it, at once.
    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<Outcome> {
        guard case .failed(let error) = ending else { return .done(Outcome(destroyed: true, expunged: expunges(progress))) }
        let now = try await environment.cloudStack.virtualMachine(id: vmId)
        if now == nil || now?.state == "Expunging" { return .done(Outcome(destroyed: true, expunged: true)) }
        if now?.state == "Destroyed" { return .done(Outcome(destroyed: true, expunged: false)) }
        if error.kind == .expungeNotPermitted {
            context.logger.notice("CloudStack refused to expunge the test VM for this API key; destroying it without expunge",
                                  metadata: ["vm_id": "\(vmId)"])
            return .look(saving: StepProgress(expungeRefused: true))
        }
        return .fail(error, saving: progress.forgettingJob(after: error))
    }

    /// The volumes on `vmId` that volumed created, adopted or mapped: never destroyed with it.
    private func keptVolumes() async throws -> [String] {
        let attached = try await environment.cloudStack.listVolumes(virtualMachineId: vmId.value).map(\.id)
        guard !attached.isEmpty else { return [] }
        return try await context.database.rows(VolumesTable.kept(among: attached.map(\.value)), logger: context.logger)
            .map { try $0.decode(String.self) }
    }
}
