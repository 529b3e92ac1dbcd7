import CloudStack
/// A volume CloudStack shows `Attaching` or `Detaching`.
///
/// VolumeApiServiceImpl moves a volume to `Attaching` (checkAndSetAttaching) or `Detaching`
/// before the job reaches the hypervisor and back when the job ends. A management server
/// restarted in between leaves the state behind with no job running on it; CloudStack then
/// refuses every attach with 431 "Volume state must be in Allocated, Ready or in Uploaded
/// state" (apache/cloudstack `server/src/main/java/com/cloud/storage/VolumeApiServiceImpl.java`,
/// getAndCheckVolumeInfo's VALID_ATTACH_STATES) until an admin resets it. With a job still
/// pending on it the state is simply in progress, and waiting is enough.
enum TransitionalVolumeState {
    static let states: Set<String> = ["Attaching", "Detaching"]

    /// True when `volume` is in a transitional state with no job pending on it.
    static func isStuck(_ volume: CloudStackVolume) -> Bool {
        states.contains(volume.state) && volume.pendingJobId == nil
    }

    /// The advice an operator needs for a volume left in `state`.
    static func advice(volumeId: String, state: String) -> String {
        "CloudStack shows volume \(volumeId) \(state) with no job running on it (a management-server restart in the middle of "
            + "an attach or detach leaves this behind), and refuses to attach it until its state is Ready again: check the volume "
            + "on its VM, have a CloudStack admin reset it (updateVolume id=\(volumeId) state=Ready), then enqueue the operation again"
    }
}

extension VolumeOperationFailure {
    /// The volume is `Attaching`/`Detaching`: permanent when no job runs on it (it stays so
    /// until an admin resets it), transient while a job is still pending on it.
    static func volumeInTransition(_ volume: CloudStackVolume) -> VolumeOperationFailure {
        if TransitionalVolumeState.isStuck(volume) {
            return VolumeOperationFailure(
                code: "volume_stuck_in_transition",
                message: TransitionalVolumeState.advice(volumeId: volume.id.value, state: volume.state))
        }
        return VolumeOperationFailure(
            code: "volume_in_transition",
            message: "volume \(volume.id) is \(volume.state) while CloudStack job \(volume.pendingJobId ?? "?") runs on it; "
                + "the operation retries once that job has ended",
            isTransient: true)
    }
}
