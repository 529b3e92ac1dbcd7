import Devices
import Worker
import Schema

/// Detaching a volume from whatever VM holds it: the step `detach` runs on its own and
/// `delete` runs first when forced. Its progress is a value the caller stores in its own
/// checkpoint, so both handlers resume it the same way.
struct VolumeDetacher: Sendable {
    let environment: JobsEnvironment

    struct Progress: Codable, Sendable, UnansweredRequestProgress {
        /// The detachVolume job, checkpointed before waiting on it.
        var jobId: String?
        /// The VM the volume was attached to: after the job CloudStack no longer says.
        var vmId: String?
        /// detachVolume was sent and no answer was read (see `AsyncJobRequest`).
        var requestUnanswered: Bool?

        init(jobId: String? = nil, vmId: String? = nil, requestUnanswered: Bool? = nil) {
            self.jobId = jobId
            self.vmId = vmId
            self.requestUnanswered = requestUnanswered
        }

        enum CodingKeys: String, CodingKey {
            case jobId = "job_id"
            case vmId = "vm_id"
            case requestUnanswered = "request_unanswered"
        }
    }

    /// Detaches `volumeId` and returns the VM it came off, or nil when it was not attached.
    ///
    /// Active NBD exports block the detach unless `force`, in which case the configured
    /// `ExportRemover` takes them down first. `save` stores progress in the caller's checkpoint.
    /// With `onlyFrom`, a volume found on another VM is left alone and reported.
    /// detachVolume goes through `AsyncJobRequest`: a resume after an unanswered one adopts
    /// the job CloudStack lists on the volume, takes a volume found detached as that request's
    /// work (returning the VM it was sent for), and otherwise detaches anew.
    func detach(
        volumeId: String, force: Bool, onlyFrom expectedVmId: String? = nil, resume: Progress?, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void
    ) async throws -> String? {
        if let jobId = resume?.jobId, let vmId = resume?.vmId {
            try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, context: context, save: save)
            return vmId
        }
        try await clearExports(volumeId: volumeId, force: force, context: context)
        guard let current = try await environment.cloudStack.volume(id: volumeId) else {
            throw VolumeOperationFailure.volumeNotFound(volumeId)
        }
        let request = AsyncJobRequest(environment: environment, command: "detachVolume")
        if let adopted = try await request.adoptPendingJob(
            resume: resume, pendingJobId: current.pendingJobId, on: "volume \(volumeId)", context: context, save: save),
           let jobId = adopted.jobId, let vmId = adopted.vmId ?? current.virtualmachineid
        {
            try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, context: context, save: save)
            return vmId
        }
        guard let vmId = current.virtualmachineid else {
            if resume?.requestUnanswered == true, let sentFor = resume?.vmId {
                context.logger.notice("the unanswered detachVolume took effect", metadata: ["vm_id": "\(sentFor)"])
                try await awaitUnplugged(volumeId: volumeId, from: sentFor)
                return sentFor
            }
            try await awaitStaleLinkGone(volumeId: volumeId, context: context)
            context.logger.debug("volume already detached")
            return nil
        }
        if let expectedVmId, vmId.lowercased() != expectedVmId.lowercased() {
            throw VolumeOperationFailure.attachedElsewhere(volumeId: volumeId, attachedTo: vmId, requested: expectedVmId)
        }
        try context.checkCancellation()
        let jobId = try await request.send(Progress(vmId: vmId), save: save) {
            try await environment.cloudStack.detachVolume(id: volumeId)
        }
        try await finish(volumeId: volumeId, vmId: vmId, jobId: jobId, context: context, save: save)
        return vmId
    }

    /// Waits on the detach job; a job that ended without success is accepted when the volume
    /// is off `vmId` anyway, else forgotten (the retry detaches anew; after a job whose outcome is
    /// unknown the unanswered mark stays, so the retry looks first). Off the appliance, the
    /// by-id link must be gone before the detach counts as done.
    ///
    /// A KVM detach timeout (`cloudstack_detach_timeout`: the guest did not let go of the disk
    /// within the agent's wait.detach.device, and CloudStack still records the volume
    /// attached) from the appliance is judged by the by-id link: once it goes within
    /// `deviceWaitTimeout`, the guest released the disk, and one more detachVolume records it
    /// (KVM then finds no disk and reports success); a link still there fails the attempt with
    /// `detach_device_held`, transient, so the retry asks again.
    private func finish(
        volumeId: String, vmId: String, jobId: String, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void, afterRelease: Bool = false
    ) async throws {
        if case .ended(let error) = try await environment.waitForJob(jobId) {
            let now = try await environment.cloudStack.volume(id: volumeId)
            if now?.virtualmachineid?.lowercased() == vmId.lowercased() {
                if error.leavesOutcomeUnknown {
                    // The job ended without a verdict (GC-cancelled, a restart, purged): keep the
                    // unanswered mark so the retry looks at the volume before it sends again.
                    try await save(Progress(vmId: vmId, requestUnanswered: true))
                    throw error
                }
                try await save(Progress())
                guard error.code == "cloudstack_detach_timeout", environment.isAppliance(vmId) else { throw error }
                guard !afterRelease, try await guestReleases(volumeId: volumeId, context: context) else {
                    throw VolumeOperationFailure.detachDeviceHeld(
                        volumeId: volumeId, vmId: vmId, waited: environment.deviceWaitTimeout, cloudStackError: error)
                }
                context.logger.notice("the guest released the disk after CloudStack's detach timed out; detaching again to record it",
                                      metadata: ["vm_id": "\(vmId)", "job_id": "\(jobId)"])
                let request = AsyncJobRequest(environment: environment, command: "detachVolume")
                let again = try await request.send(Progress(vmId: vmId), save: save) {
                    try await environment.cloudStack.detachVolume(id: volumeId)
                }
                try await finish(volumeId: volumeId, vmId: vmId, jobId: again, context: context, save: save, afterRelease: true)
                return
            }
            context.logger.notice("detach job failed but the volume is off the VM; accepting",
                                  metadata: ["vm_id": "\(vmId)", "error": "\(error.code)"])
        }
        try await awaitUnplugged(volumeId: volumeId, from: vmId)
    }

    /// After a detach timeout: whether the by-id link goes within `deviceWaitTimeout`.
    private func guestReleases(volumeId: String, context: OperationContext) async throws -> Bool {
        do {
            try await environment.resolver.waitForRemoval(volumeId: volumeId, timeout: environment.deviceWaitTimeout)
            return true
        } catch let error as DeviceError where error.kind == .deviceRemovalTimeout {
            context.logger.notice("the guest still holds the disk after CloudStack's detach timed out", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Off the appliance, the detach counts once the by-id link is gone.
    private func awaitUnplugged(volumeId: String, from vmId: String) async throws {
        if environment.isAppliance(vmId) {
            try await environment.resolver.waitForRemoval(volumeId: volumeId, timeout: environment.deviceWaitTimeout)
        }
    }

    /// CloudStack says the volume is on no VM, yet its by-id link is still here: a detach
    /// (ours whose progress was lost, or someone else's) succeeded and udev has not removed
    /// the link yet — it does so after the job, sometimes seconds later. The detach is not
    /// done while the link is there: a re-attach or an export could still find the old one.
    private func awaitStaleLinkGone(volumeId: String, context: OperationContext) async throws {
        let present = try environment.resolver.presentLinkPaths(volumeId: volumeId)
        guard !present.isEmpty else { return }
        context.logger.notice("volume is detached but its by-id link is still present; waiting for udev to remove it",
                              metadata: ["links": "\(present)"])
        try await environment.resolver.waitForRemoval(volumeId: volumeId, timeout: environment.deviceWaitTimeout)
    }

    /// Refuses to detach an exported volume unless forced; forced, removes its exports. The
    /// export an appliance attach made (keyed to the appliance itself, see `ApplianceExport`)
    /// belongs to the attachment and goes with it without `force`, as the original daemon's
    /// detach removed it; a source VM's export still needs an unexport or `force`.
    private func clearExports(volumeId: String, force: Bool, context: OperationContext) async throws {
        let exports = try await activeExports(volumeId: volumeId, context: context)
        guard !exports.isEmpty else { return }
        let names = exports.map(\.exportName)
        let attachmentsOnly = exports.allSatisfy { environment.isAppliance($0.vmId) }
        guard force || attachmentsOnly else { throw VolumeOperationFailure.volumeExported(volumeId: volumeId, exports: names) }
        guard let remover = environment.exportRemover else {
            throw VolumeOperationFailure.noExportRemover(volumeId: volumeId, exports: names)
        }
        context.logger.notice(force ? "force: removing the volume's exports before detaching"
                                    : "removing the export the attach made before detaching",
                              metadata: ["exports": "\(names)"])
        try await remover.removeExports(volumeId: volumeId, context: context)
        let remaining = try await activeExports(volumeId: volumeId, context: context).map(\.exportName)
        guard remaining.isEmpty else { throw VolumeOperationFailure.exportsRemain(volumeId: volumeId, exports: remaining) }
    }

    private func activeExports(volumeId: String, context: OperationContext) async throws -> [ExportMapping] {
        try await context.database.decodedRows(ExportMappingsTable.activeByVolume(volumeId), logger: context.logger, ExportMapping.init)
    }
}
