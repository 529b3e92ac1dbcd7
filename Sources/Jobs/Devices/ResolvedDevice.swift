/// A volume found as a local block device through its by-id link.
public struct ResolvedDevice: Sendable, Equatable, CustomStringConvertible {
    /// The by-id link, e.g. `/dev/disk/by-id/virtio-b3bb93101b594f6297e8`. Stable across
    /// re-attachments and reboots, so this is what exports and mappings store.
    public let byIdPath: String
    /// What the link resolves to right now (e.g. `/dev/vdf`); changes when the kernel
    /// hands out another name, so it is for display and diagnostics only.
    public let devicePath: String
    /// Size of the device (BLKGETSIZE64) or of the backing regular file.
    public let sizeBytes: UInt64

    public init(byIdPath: String, devicePath: String, sizeBytes: UInt64) {
        self.byIdPath = byIdPath
        self.devicePath = devicePath
        self.sizeBytes = sizeBytes
    }

    public var description: String { "\(byIdPath) → \(devicePath) (\(sizeBytes) bytes)" }
}
