import Primitives
/// The disk serial CloudStack's KVM agent gives a volume, which udev turns into the
/// `/dev/disk/by-id/virtio-<serial>` link inside the guest.
///
/// apache/cloudstack, `LibvirtComputingResource.diskUuidToSerial`:
/// ```java
/// final String uuidWithoutHyphen = uuid.replace("-", "");
/// return uuidWithoutHyphen.substring(0, Math.min(uuidWithoutHyphen.length(), 20));
/// ```
/// so the serial is the volume UUID without dashes, first 20 characters.
public enum DiskSerial {
    /// Number of characters of the dash-less UUID that become the serial.
    public static let length = 20

    /// `b3bb9310-1b59-4f62-97e8-…` → `b3bb93101b594f6297e8`.
    ///
    /// The serial is returned in lower case so the same volume always maps to the same
    /// name, whatever case its id arrives in. CloudStack itself does not change case
    /// (`uuid.replace("-", "")`): its UUIDs are lower case (Java `UUID.toString()`) unless an
    /// admin set one (`updateVolume customid=`), and then the link udev creates is in that
    /// case. `ByIdResolver` therefore matches link names case-insensitively.
    public static func serial(forVolumeId volumeId: String) throws(DeviceError) -> String {
        guard VolumeUUID.isUUID(volumeId) else {
            throw DeviceError(
                .invalidVolumeId,
                "volume id \(quotedForMessage(volumeId)) is not a CloudStack volume UUID "
                    + "(expected 8-4-4-4-12 hex digits, e.g. b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44); "
                    + "pass the volume's id as listVolumes reports it"
            )
        }
        let hex = volumeId.lowercased().filter { $0 != "-" }
        return String(hex.prefix(length))
    }
}
