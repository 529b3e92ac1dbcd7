import Primitives
import Devices
import CloudStack
import Schema

/// One repair reconcile decided on: the action for the report and what the repair needs.
struct PlannedRepair: Sendable {
    enum Change: Sendable {
        /// CloudStack shows the volume detached: drop the mapping as read, and its exports.
        case removeStaleMapping(DeviceMapping)
        /// Attached to the appliance outside volumed: record it.
        case adopt(CloudStackVolume, ResolvedDevice)
        /// The mapping as read, to be pointed at the device the by-id link resolves to now.
        case updateDevice(DeviceMapping, ResolvedDevice, cloudStackDeviceId: Int?)
    }

    let action: ReconcileAction
    let change: Change
}

/// Decides, from one snapshot and nothing else, which repairs are safe and what is left
/// for a human. The rules (the original daemon's troubleshooting cases):
///
/// | tables say | CloudStack / by-id say | outcome |
/// |---|---|---|
/// | anything, with a pending or executing operation | — | `busy`, untouched |
/// | mapping to VM X | volume detached | mapping (and its exports) removed |
/// | mapping to VM X | attached to VM Y | reported |
/// | mapping to VM X | volume unknown or destroyed | reported (never deleted on absence alone) |
/// | appliance mapping, device D | link resolves to D' (or another slot) | `device_path` updated |
/// | appliance mapping | attached here, no by-id link | reported |
/// | no mapping | data disk attached to the appliance, link resolves, sizes agree | adopted |
/// | `volumes` row | volume unknown or destroyed | reported |
/// | any of the above | volume `Attaching`/`Detaching`, no job pending | reported (see `TransitionalVolumeState`) |
struct ReconcilePlanner {
    let snapshot: ReconcileSnapshot
    let applianceVMId: String?

    /// CloudStack keeps destroyed volumes listable until they are expunged; none of these
    /// can be attached again, so for reconcile they are gone.
    static let goneStates: Set<String> = ["Destroy", "Expunging", "Expunged"]

    func plan() -> (repairs: [PlannedRepair], findings: [ReconcileFinding]) {
        var repairs: [PlannedRepair] = []
        var findings: [ReconcileFinding] = []
        for volumeId in snapshot.volumeIds.intersection(snapshot.busy).sorted() {
            findings.append(ReconcileFinding(
                kind: .busy, volumeId: volumeId,
                message: "volume \(volumeId) has a pending or executing operation; reconcile left it alone and looks again next pass"))
        }
        let mapped = Set(snapshot.mappings.map(\.volumeId))
        for mapping in snapshot.mappings.sorted(by: { $0.volumeId < $1.volumeId }) where !snapshot.busy.contains(mapping.volumeId) {
            check(mapping, repairs: &repairs, findings: &findings)
        }
        for volume in snapshot.onAppliance.sorted(by: { $0.id < $1.id })
        where !mapped.contains(volume.id.value) && !snapshot.busy.contains(volume.id.value) {
            checkUnmapped(volume, repairs: &repairs, findings: &findings)
        }
        for recorded in snapshot.recorded.sorted(by: { $0.volumeId < $1.volumeId }) where !snapshot.busy.contains(recorded.volumeId) {
            checkRecorded(recorded, findings: &findings)
        }
        for volume in snapshot.untracked.sorted(by: { $0.id < $1.id }) {
            findings.append(ReconcileFinding(
                kind: .untrackedVolume, volumeId: volume.id.value,
                message: "CloudStack volume \(volume.id) is named \(quotedForMessage(volume.name)) like a create operation that failed, "
                    + "but no operation and no volumes row owns it: a createVolume whose reply was lost may have made it; "
                    + "delete it in CloudStack if nobody uses it, or attach it to record it"))
        }
        for volumeId in snapshot.volumeIds.subtracting(snapshot.busy).sorted() {
            if case .found(let volume) = snapshot.cloudStack[volumeId], TransitionalVolumeState.isStuck(volume) {
                findings.append(ReconcileFinding(
                    kind: .volumeStuckInTransition, volumeId: volumeId,
                    message: TransitionalVolumeState.advice(volumeId: volumeId, state: volume.state)))
            }
        }
        return (repairs, findings)
    }

    private func check(_ mapping: DeviceMapping, repairs: inout [PlannedRepair], findings: inout [ReconcileFinding]) {
        let volumeId = mapping.volumeId
        let volume: CloudStackVolume
        switch snapshot.cloudStack[volumeId] {
        case .found(let found) where !Self.goneStates.contains(found.state):
            volume = found
        case .found(let found):
            findings.append(ReconcileFinding(
                kind: .mappingOfUnknownVolume, volumeId: volumeId,
                message: "device_mappings records volume \(volumeId) on VM \(mapping.vmId), but CloudStack shows it \(found.state); "
                    + "once it is expunged, delete the row (DELETE FROM device_mappings WHERE volume_id = '\(volumeId)')"))
            return
        case .unknown:
            findings.append(ReconcileFinding(
                kind: .mappingOfUnknownVolume, volumeId: volumeId,
                message: "device_mappings records volume \(volumeId) on VM \(mapping.vmId), but CloudStack does not know the volume; "
                    + "check that CLOUDSTACK_API_KEY sees every account, then delete the row if the volume is really gone"))
            return
        case .failed(let reason):
            findings.append(checkFailed(volumeId, "CloudStack", reason))
            return
        case nil:
            return
        }

        guard let attachedTo = volume.virtualmachineid else {
            let message = "CloudStack shows volume \(volumeId) detached, but device_mappings records it on VM \(mapping.vmId)"
                + " (\(mapping.operationMode)); the stale mapping and any active exports of the volume are removed"
            repairs.append(PlannedRepair(action: ReconcileAction(kind: .removeStaleMapping, volumeId: volumeId, message: message),
                                         change: .removeStaleMapping(mapping)))
            return
        }
        guard attachedTo == CloudStackID(mapping.vmId) else {
            findings.append(ReconcileFinding(
                kind: .attachedToOtherVM, volumeId: volumeId,
                message: "device_mappings records volume \(volumeId) on VM \(mapping.vmId), but CloudStack shows it attached to VM "
                    + "\(attachedTo)\(volume.vmname.map { " (\($0))" } ?? ""); enqueue an attach to VM \(attachedTo) to record it "
                    + "there, or a detach to free it"))
            return
        }
        guard isAppliance(mapping.vmId) else { return }
        guard mapping.operationMode == "appliance" else {
            findings.append(ReconcileFinding(
                kind: .modeMismatch, volumeId: volumeId,
                message: "device_mappings records volume \(volumeId) as remote on VM \(mapping.vmId), which is this appliance; "
                    + "enqueue an attach to \(mapping.vmId) to record its by-id path"))
            return
        }
        switch snapshot.devices[volumeId] {
        case .resolved(let device):
            if let action = deviceDrift(mapping, device: device, volume: volume) {
                repairs.append(PlannedRepair(action: action, change: .updateDevice(mapping, device, cloudStackDeviceId: volume.deviceid)))
            }
        case .missing(let expected):
            findings.append(ReconcileFinding(
                kind: .byIdLinkMissing, volumeId: volumeId,
                message: "CloudStack shows volume \(volumeId) attached to this appliance and device_mappings records "
                    + "\(mapping.byIdPath ?? expected), but no by-id link resolves (looked for \(expected)); check udev "
                    + "(udevadm trigger), the disk bus, and VOLUMED_BY_ID_DIR"))
        case .failed(let reason):
            findings.append(checkFailed(volumeId, "its by-id link", reason))
        case nil:
            break
        }
    }

    /// The repair for an appliance mapping whose recorded device no longer matches, or nil.
    private func deviceDrift(_ mapping: DeviceMapping, device: ResolvedDevice, volume: CloudStackVolume) -> ReconcileAction? {
        var changes: [String] = []
        if mapping.devicePath != device.devicePath {
            changes.append("device_path \(mapping.devicePath ?? "NULL") → \(device.devicePath)")
        }
        if mapping.byIdPath != device.byIdPath {
            changes.append("by_id_path \(mapping.byIdPath ?? "NULL") → \(device.byIdPath)")
        }
        if let slot = volume.deviceid, mapping.cloudStackDeviceId != slot {
            changes.append("cloudstack_device_id \(mapping.cloudStackDeviceId.map(String.init) ?? "NULL") → \(slot)")
        }
        guard !changes.isEmpty else { return nil }
        return ReconcileAction(
            kind: .updateDevicePath, volumeId: mapping.volumeId,
            message: "the by-id link of volume \(mapping.volumeId) now resolves differently than recorded (after a reboot or "
                + "re-attach); the mapping follows it: \(changes.joined(separator: ", "))")
    }

    private func checkUnmapped(_ volume: CloudStackVolume, repairs: inout [PlannedRepair], findings: inout [ReconcileFinding]) {
        let volumeId = volume.id.value
        switch snapshot.devices[volumeId] {
        case .resolved(let device) where device.sizeBytes == UInt64(max(volume.size, 0)):
            repairs.append(PlannedRepair(
                action: ReconcileAction(
                    kind: .adoptVolume, volumeId: volumeId,
                    message: "volume \(volumeId) (\(volume.name)) is attached to this appliance in CloudStack but volumed has no "
                        + "mapping for it (attached outside volumed); adopted as \(device.byIdPath) → \(device.devicePath)"),
                change: .adopt(volume, device)))
        case .resolved(let device):
            findings.append(ReconcileFinding(
                kind: .sizeMismatch, volumeId: volumeId,
                message: "volume \(volumeId) is attached to this appliance outside volumed, but \(device.byIdPath) → "
                    + "\(device.devicePath) has \(device.sizeBytes) bytes where CloudStack says \(volume.size); not adopted: "
                    + "check that the link belongs to this volume (rescan the disk after a resize)"))
        case .missing(let expected):
            findings.append(ReconcileFinding(
                kind: .byIdLinkMissing, volumeId: volumeId,
                message: "volume \(volumeId) is attached to this appliance in CloudStack (outside volumed) but no by-id link "
                    + "resolves (looked for \(expected)); not adopted: check udev (udevadm trigger) and VOLUMED_BY_ID_DIR"))
        case .failed(let reason):
            findings.append(checkFailed(volumeId, "its by-id link", reason))
        case nil:
            break
        }
    }

    private func checkRecorded(_ recorded: VolumeRecord, findings: inout [ReconcileFinding]) {
        let volumeId = recorded.volumeId
        let advice = "if it was deleted outside volumed, mark it (UPDATE volumes SET state = 'Deleted' WHERE volume_id = '\(volumeId)')"
        switch snapshot.cloudStack[volumeId] {
        case .unknown:
            findings.append(ReconcileFinding(
                kind: .volumeUnknownToCloudStack, volumeId: volumeId,
                message: "volumes lists \(volumeId) (\(recorded.name), \(recorded.state)) but CloudStack no longer knows it; \(advice)"))
        case .found(let volume) where Self.goneStates.contains(volume.state):
            findings.append(ReconcileFinding(
                kind: .volumeUnknownToCloudStack, volumeId: volumeId,
                message: "volumes lists \(volumeId) (\(recorded.name), \(recorded.state)) but CloudStack shows it \(volume.state); \(advice)"))
        case .failed(let reason) where !snapshot.mappings.contains(where: { $0.volumeId == volumeId }):
            findings.append(checkFailed(volumeId, "CloudStack", reason))
        default:
            break
        }
    }

    private func checkFailed(_ volumeId: String, _ what: String, _ reason: String) -> ReconcileFinding {
        ReconcileFinding(kind: .checkFailed, volumeId: volumeId, message: "could not check volume \(volumeId) against \(what): \(reason)")
    }

    private func isAppliance(_ vmId: String) -> Bool {
        guard let applianceVMId else { return false }
        return CloudStackID(vmId) == CloudStackID(applianceVMId)
    }
}
