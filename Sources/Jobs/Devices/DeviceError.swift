/// Errors of the local-device boundary: deriving the disk serial, finding the volume's
/// `/dev/disk/by-id` link and reading the device behind it.
///
/// `code` is stable and goes to `volume_operations.error_code`; `message` is the sentence
/// for humans and always names the cause and the fix.
public struct DeviceError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, CaseIterable {
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
    }

    /// The typed code; `code` (the `OperationFailure` witness, in Failures.swift) is its raw value.
    public let kind: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.kind = code
        self.message = message
    }

    /// Whether retrying the same operation later can succeed without a human fixing something.
    /// Timeouts are transient (udev or the hypervisor may just be slow); a bad id or a
    /// device we are not allowed to read stays bad until someone changes something.
    public var isTransient: Bool {
        switch kind {
        case .deviceLinkTimeout, .deviceRemovalTimeout, .deviceWatchFailed:
            return true
        case .invalidVolumeId, .deviceUnreadable, .deviceMismatch:
            return false
        }
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}
