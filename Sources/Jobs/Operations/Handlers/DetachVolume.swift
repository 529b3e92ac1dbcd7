import Devices
import CloudStack
import Schema
import Worker

/// detachVolume as a `CloudStackStep`, from whatever VM holds the volume: the step `detach`
/// runs on its own, `delete` runs first when forced and `cleanup` runs to take a volume off
/// the test VM. Returns the VM the volume came off, or nil when it was not attached.
///
/// A KVM detach timeout (`cloudstack_detach_timeout`) from the appliance is judged by the
/// by-id link: once it goes within `deviceWaitTimeout`, the guest released the disk, and one
/// more detachVolume records it (KVM then finds no disk and reports success); a link still
/// there is `detach_device_held`, transient, so the retry asks again.
struct DetachVolume: CloudStackAction {
    let environment: OperationEnvironment
    let context: OperationContext
    let volumeId: CloudStackID
    var force = false
    var onlyFrom: CloudStackID? = nil

    var command: String { "detachVolume" }
    var object: String { "volume \(volumeId)" }

    /// The exports go first: a volume with exports is not even looked at unless they may go.
    func look(_ progress: StepProgress) async throws -> CloudStackVolume? {
        try await clearExports()
        return try await environment.cloudStack.volume(id: volumeId)
    }

    func decide(_ current: CloudStackVolume?, _ progress: StepProgress) async throws -> StepNext<CloudStackID?> {
        guard let current else { throw VolumeOperationFailure.volumeNotFound(volumeId) }
        guard let vmId = current.virtualmachineid else {
            if progress.requestUnanswered == true, let sentFor = progress.vmId {
                context.logger.notice("the unanswered detachVolume took effect", metadata: ["vm_id": "\(sentFor)"])
                try await awaitUnplugged(from: sentFor)
                return .done(sentFor)
            }
            try await awaitStaleLinkGone()
            context.logger.debug("volume already detached")
            return .done(nil)
        }
        if let onlyFrom, vmId != onlyFrom {
            throw VolumeOperationFailure.attachedElsewhere(volumeId: volumeId, attachedTo: vmId, requested: onlyFrom)
        }
        return send(from: vmId)
    }

    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<CloudStackID?> {
        guard let vmId = progress.vmId else { return .look(saving: StepProgress()) }
        if case .failed(let error) = ending {
            let now = try await environment.cloudStack.volume(id: volumeId)
            if now?.virtualmachineid == vmId {
                guard !error.leavesOutcomeUnknown else { return .fail(error, saving: progress.forgettingJob(after: error)) }
                guard error.kind == .detachTimeout, environment.isAppliance(vmId) else {
                    return .fail(error, saving: StepProgress())
                }
                guard progress.resentAfterRelease != true, try await guestReleases() else {
                    return .fail(VolumeOperationFailure.detachDeviceHeld(
                        volumeId: volumeId, vmId: vmId, waited: environment.deviceWaitTimeout, cloudStackError: error),
                                 saving: StepProgress())
                }
                context.logger.notice("the guest released the disk after CloudStack's detach timed out; detaching again to record it",
                                      metadata: ["vm_id": "\(vmId)", "job_id": "\(progress.jobId ?? "")"])
                return send(from: vmId, resentAfterRelease: true)
            }
            context.logger.notice("detach job failed but the volume is off the VM; accepting",
                                  metadata: ["vm_id": "\(vmId)", "error": "\(error.code)"])
        }
        try await awaitUnplugged(from: vmId)
        return .done(vmId)
    }

    private func send(from vmId: CloudStackID, resentAfterRelease: Bool? = nil) -> StepNext<CloudStackID?> {
        .send(StepProgress(vmId: vmId, resentAfterRelease: resentAfterRelease)) {
            AcceptedRequest(jobId: try await environment.cloudStack.detachVolume(id: volumeId.value))
        }
    }

    /// After a detach timeout: whether the by-id link goes within `deviceWaitTimeout`.
    private func guestReleases() async throws -> Bool {
        do {
            try await environment.resolver.waitForRemoval(volumeId: volumeId.value, timeout: environment.deviceWaitTimeout)
            return true
        } catch let error as DeviceError where error.kind == .deviceRemovalTimeout {
            context.logger.notice("the guest still holds the disk after CloudStack's detach timed out", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Off the appliance, the detach counts once the by-id link is gone.
    private func awaitUnplugged(from vmId: CloudStackID) async throws {
        if environment.isAppliance(vmId) {
            try await environment.resolver.waitForRemoval(volumeId: volumeId.value, timeout: environment.deviceWaitTimeout)
        }
    }

    /// CloudStack says the volume is on no VM, yet its by-id link is still here: a detach
    /// (ours whose progress was lost, or someone else's) succeeded and udev has not removed
    /// the link yet — it does so after the job, sometimes seconds later. The detach is not
    /// done while the link is there: a re-attach or an export could still find the old one.
    private func awaitStaleLinkGone() async throws {
        let present = try environment.resolver.presentLinkPaths(volumeId: volumeId.value)
        guard !present.isEmpty else { return }
        context.logger.notice("volume is detached but its by-id link is still present; waiting for udev to remove it",
                              metadata: ["links": "\(present)"])
        try await environment.resolver.waitForRemoval(volumeId: volumeId.value, timeout: environment.deviceWaitTimeout)
    }

    /// Refuses to detach an exported volume unless forced; forced, removes its exports. The
    /// export an appliance attach made (keyed to the appliance itself, see `ApplianceExport`)
    /// belongs to the attachment and goes with it without `force`, as the original daemon's
    /// detach removed it; a source VM's export still needs an unexport or `force`.
    private func clearExports() async throws {
        let exports = try await activeExports()
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
        try await remover.removeExports(volumeId: volumeId.value, context: context)
        let remaining = try await activeExports().map(\.exportName)
        guard remaining.isEmpty else { throw VolumeOperationFailure.exportsRemain(volumeId: volumeId, exports: remaining) }
    }

    private func activeExports() async throws -> [ExportMapping] {
        try await context.database.decodedRows(ExportMappingsTable.activeByVolume(volumeId.value), logger: context.logger, ExportMapping.init)
    }
}
