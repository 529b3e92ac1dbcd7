import Primitives

/// Errors of the local-device boundary: deriving the disk serial, finding the volume's
/// `/dev/disk/by-id` link and reading the device behind it.
public typealias DeviceError = CodedError<DeviceErrorCode>

/// The codes of `DeviceError`.
public enum DeviceErrorCode: String, FailureCode, CaseIterable {
    /// The volume id is not a UUID, so no serial (and no path) can be derived from it.
    case invalidVolumeId = "invalid_volume_id"
    /// No usable by-id link appeared before the deadline.
    case deviceLinkTimeout = "device_link_timeout"
    /// The by-id link was still there when the deadline passed.
    case deviceRemovalTimeout = "device_removal_timeout"
    /// The link resolved, but its target could not be opened or sized.
    case deviceUnreadable = "device_unreadable"
    /// The kernel refused an inotify instance or watch (limits, unsupported file system).
    case deviceWatchFailed = "device_watch_failed"
    /// The by-id link resolves to something that is not the volume's disk: not a block
    /// device, or not the size recorded at attach. Never served or recorded.
    case deviceMismatch = "device_mismatch"

    /// Whether retrying the same operation later can succeed without a human fixing something.
    /// Timeouts are transient (udev or the hypervisor may just be slow); a bad id or a
    /// device we are not allowed to read stays bad until someone changes something.
    public var isTransient: Bool {
        switch self {
        case .deviceLinkTimeout, .deviceRemovalTimeout, .deviceWatchFailed:
            return true
        case .invalidVolumeId, .deviceUnreadable, .deviceMismatch:
            return false
        }
    }
}
