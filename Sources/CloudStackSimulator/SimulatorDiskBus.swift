/// The bus an appliance's hot-plugged disks land on, which decides the name udev gives
/// their by-id link.
///
/// apache/cloudstack `plugins/hypervisors/kvm/src/main/java/com/cloud/hypervisor/kvm/storage/KVMStorageProcessor.java`,
/// `attachOrDetachDisk`: the new disk takes the bus of the VM's first disk —
/// ```java
/// DiskDef.DiskBus busT = DiskDef.DiskBus.VIRTIO;
/// for (final DiskDef disk : disks) {
///     if (disk.getDeviceType() == DeviceType.DISK) {
///         if (disk.getBusType() == DiskDef.DiskBus.SCSI) { busT = DiskDef.DiskBus.SCSI; }
///         break;
///     }
/// }
/// ...
/// diskdef.setSerial(serial);   // resource.diskUuidToSerial(vol.getUuid())
/// ```
/// — so an appliance deployed with a virtio-scsi root disk gets every data disk on SCSI with
/// the same serial. udev's `60-persistent-storage.rules` link a virtio-blk disk by its serial
/// (`virtio-<serial>`) and a QEMU SCSI disk by `scsi_id`'s vendor/model/serial
/// (`scsi-0QEMU_QEMU_HARDDISK_<serial>`).
public enum SimulatorDiskBus: String, Codable, Sendable, CaseIterable {
    case virtio
    case scsi

    /// The by-id link name udev creates for a disk with this serial on this bus.
    public func linkName(serial: String) -> String {
        switch self {
        case .virtio: return "virtio-" + serial
        case .scsi: return "scsi-0QEMU_QEMU_HARDDISK_" + serial
        }
    }
}
