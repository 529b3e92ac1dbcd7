import Foundation

/// A volume left `Attaching` or `Detaching`, as a management-server restart between
/// VolumeApiServiceImpl's checkAndSetAttaching (or the detach's state change) and the job's
/// end leaves it: no job runs on it, and CloudStack refuses every attach with 431 "Volume
/// state must be in Allocated, Ready or in Uploaded state" (getAndCheckVolumeInfo,
/// VALID_ATTACH_STATES) until an admin resets it (UpdateVolumeCmd `state`, admin only).
/// A detach checks no volume state (VolumeDetachServiceImpl.detachVolumeFromVM), so it still
/// runs, leaving the state as it was.
///
/// Set through `POST /sim/volumes/{id}` (`{"state":"Attaching"}`); `Ready` or `Allocated`
/// is the admin's reset.
public struct SimulatorVolumeState: Codable, Sendable, Equatable {
    public var state: String

    public init(state: String) {
        self.state = state
    }

    static let settable: Set<String> = ["Allocated", "Ready", "Attaching", "Detaching"]
}

extension SimulatedCloud {
    /// The states getAndCheckVolumeInfo attaches from.
    static let attachableVolumeStates: Set<String> = ["Allocated", "Ready", "Uploaded"]

    func setVolumeState(id: String, _ change: SimulatorVolumeState) throws -> SimulatorState.Volume {
        guard let index = volumeIndex(id.lowercased()), !volumes[index].removed else {
            throw SimulatorRequestError(message: "no volume with id \(id)")
        }
        guard SimulatorVolumeState.settable.contains(change.state) else {
            throw SimulatorRequestError(
                message: "state must be one of \(SimulatorVolumeState.settable.sorted().joined(separator: ", ")), got \(change.state)")
        }
        // Attaching happens before the volume is recorded on a VM, Detaching while it still is.
        if change.state == "Attaching", volumes[index].virtualMachineID != nil {
            throw SimulatorRequestError(message: "state Attaching is for a detached volume; volume \(id) is attached")
        }
        if change.state == "Detaching", volumes[index].virtualMachineID == nil {
            throw SimulatorRequestError(message: "state Detaching is for an attached volume; volume \(id) is detached")
        }
        volumes[index].state = change.state
        let volume = volumes[index]
        return SimulatorState.Volume(
            id: volume.id, name: volume.name, type: volume.type, size: volume.sizeBytes, state: volume.state,
            virtualmachineid: volume.virtualMachineID, deviceid: volume.deviceID)
    }
}
