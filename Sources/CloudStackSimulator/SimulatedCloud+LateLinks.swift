import Foundation

/// A by-id link event waiting for its delay (`SimulatorFaults.linkCreateDelayMs`,
/// `linkRemoveDelayMs`, `linkDelayJitterMs`).
struct PendingLinkEvent: Sendable {
    /// Tells this event from a later one queued for the same volume.
    var token: Int
    var task: Task<Void, Never>
}

/// Late udev links. CloudStack's attach job succeeds once libvirt has hot-plugged the disk
/// (`KVMStorageProcessor.attachOrDetachDisk` → `dm.attachDevice`, which returns when QEMU has
/// the device); the guest kernel then probes it and udev (`60-persistent-storage.rules`)
/// creates the by-id link on its own schedule — seconds later on a busy guest. Detach is
/// the mirror image: the job succeeds when libvirt reports the device gone, and udev removes
/// the link after that. Nothing in CloudStack waits for the guest's udev.
///
/// With the delays at 0 (the default) the link changes inside the job, as before. Events for
/// one volume apply in the order they happened (udev handles a device's events in order), so
/// a quick detach-then-attach never leaves the old removal undoing the new link.
extension SimulatedCloud {
    /// Hot-plug: the disk exists at once; its link appears after the create delay.
    func plugDisk(_ hotPlug: HotPlugEmulator, volumeID: String, sizeBytes: Int64) throws {
        try hotPlug.prepareBackingFile(volumeID: volumeID, sizeBytes: sizeBytes)
        try scheduleLinkEvent(volumeID: volumeID, delayMs: faults.linkCreateDelayMs, what: "create") {
            try hotPlug.publishLink(volumeID: volumeID)
        }
    }

    /// Hot-unplug: the link goes after the remove delay.
    func unplugDisk(_ hotPlug: HotPlugEmulator, volumeID: String) throws {
        try scheduleLinkEvent(volumeID: volumeID, delayMs: faults.linkRemoveDelayMs, what: "remove") {
            try hotPlug.unplug(volumeID: volumeID)
        }
    }

    /// Applies `apply` now when there is no delay and nothing queued for the volume (its
    /// errors fail the job, as before); otherwise queues it behind the volume's earlier
    /// events, to run once the delay has passed (its errors are logged: the job is over).
    private func scheduleLinkEvent(
        volumeID: String, delayMs: Int, what: String, _ apply: @escaping @Sendable () throws -> Void
    ) throws {
        let jitter = faults.linkDelayJitterMs > 0 ? Int.random(in: 0...faults.linkDelayJitterMs) : 0
        let previous = pendingLinkEvents[volumeID]
        if delayMs + jitter == 0 && previous == nil {
            try apply()
            return
        }
        let due = ContinuousClock.now + .milliseconds(delayMs + jitter)
        nextLinkEventToken += 1
        let token = nextLinkEventToken
        let logger = self.logger
        let task = Task { [weak self] in
            await previous?.task.value
            try? await Task.sleep(until: due, clock: .continuous)
            if !Task.isCancelled {
                do {
                    try apply()
                } catch {
                    logger.warning("late by-id link event failed", metadata: ["volume_id": "\(volumeID)", "event": "\(what)", "error": "\(error)"])
                }
            }
            await self?.linkEventApplied(volumeID: volumeID, token: token)
        }
        pendingLinkEvents[volumeID] = PendingLinkEvent(token: token, task: task)
    }

    private func linkEventApplied(volumeID: String, token: Int) {
        if pendingLinkEvents[volumeID]?.token == token {
            pendingLinkEvents[volumeID] = nil
        }
    }

    /// At shutdown: pending link events are dropped.
    func cancelLinkEvents() {
        for event in pendingLinkEvents.values { event.task.cancel() }
        pendingLinkEvents.removeAll()
    }
}
