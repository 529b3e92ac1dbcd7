import Foundation

/// KVM's detach timeout. apache/cloudstack
/// `plugins/hypervisors/kvm/src/main/java/com/cloud/hypervisor/kvm/storage/KVMStorageProcessor.java`
/// `attachOrDetachDevice`: the agent sends libvirt's detachDevice, then polls the domain for
/// `wait.detach.device` (10000 ms by default, VolumeApiServiceImpl.WaitDetachDevice); a guest
/// that has not let go of the disk by then fails the command with InternalErrorException
/// "Could not detach volume after sending the command and waiting for [10000] milliseconds. …",
/// which VolumeDetachServiceImpl.orchestrateDetachVolumeFromVM reports as a CloudRuntimeException
/// "Failed to detach volume <name> from VM <name>; <exception>": the job fails with 530 and the
/// volume stays attached in CloudStack. The guest may still release the disk later (its
/// by-id link goes) or never. A later detach of a disk the domain no longer has succeeds at once
/// (attachOrDetachDisk: "Could not find disk … We will set it as detached in the database").
///
/// Here, with `SimulatorFaults.detachTimeoutRate`, a detach from a running appliance draws the
/// timeout; the disk is then held: it is released (link removed) `detachReleaseMs` after the
/// failed job, or never. While held, every detach fails the same way; once released, the next
/// one succeeds.
extension SimulatedCloud {
    struct HeldDevice: Sendable {
        var released = false
    }

    static let waitDetachDeviceMs = 10_000

    /// Called by the detach job before it unplugs: throws the agent's timeout while the guest
    /// holds the disk, and draws a new hold at `detachTimeoutRate`.
    func failIfGuestHoldsDisk(_ volumeIndex: Int) throws {
        let volume = volumes[volumeIndex]
        guard let vmID = volume.virtualMachineID, hotPlug(forVM: vmID) != nil,
              let vm = virtualMachines.first(where: { $0.id == vmID }), vm.state == "Running"
        else { return }
        if let held = heldDevices[volume.id] {
            if held.released {
                heldDevices[volume.id] = nil
                return
            }
            throw detachTimeout(volume, vm)
        }
        guard faults.detachTimeoutRate > 0, Double.random(in: 0..<1) < faults.detachTimeoutRate else { return }
        heldDevices[volume.id] = HeldDevice()
        if let releaseMs = faults.detachReleaseMs {
            let volumeID = volume.id
            jobTimers["release-\(volumeID)"] = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(releaseMs))
                guard !Task.isCancelled else { return }
                await self?.guestReleasesDisk(volumeID)
            }
        }
        logger.debug("detach times out: the guest holds the disk", metadata: ["volume_id": "\(volume.id)"])
        throw detachTimeout(volume, vm)
    }

    /// The guest let go: the disk leaves the domain and udev removes its by-id link.
    func guestReleasesDisk(_ volumeID: String) {
        jobTimers["release-\(volumeID)"] = nil
        guard heldDevices[volumeID] != nil else { return }
        heldDevices[volumeID]?.released = true
        for hotPlug in allHotPlugs {
            try? hotPlug.unplug(volumeID: volumeID)
        }
        logger.debug("the guest released the disk", metadata: ["volume_id": "\(volumeID)"])
    }

    private func detachTimeout(_ volume: SimulatedVolume, _ vm: SimulatedVirtualMachine) -> JobFailure {
        recordSideEffect(volume.id) { $0.detachTimedOut += 1 }
        return JobFailure.internalError(
            "Failed to detach volume \(volume.name) from VM \(vm.name); com.cloud.exception.InternalErrorException: Could not "
                + "detach volume after sending the command and waiting for [\(Self.waitDetachDeviceMs)] milliseconds. Probably the "
                + "VM does not support the sent detach command or the device is busy at the moment. Try again in a couple of minutes.")
    }
}
