import Primitives

/// Errors of the NBD boundary: naming, publishing, removing and checking exports.
public typealias NBDExportError = CodedError<NBDExportErrorCode>

/// The codes of `NBDExportError`.
public enum NBDExportErrorCode: String, FailureCode, CaseIterable {
    case invalidVolumeId = "invalid_volume_id"
    /// A name with characters that could escape the export directory or a config section.
    case invalidExportName = "invalid_export_name"
    /// A device path that is relative or could inject a line into a config file.
    case invalidDevicePath = "invalid_device_path"
    /// The device to export does not exist (yet).
    case exportTargetMissing = "export_target_missing"
    case exportDirectoryMissing = "export_directory_missing"
    case exportDirectoryUnwritable = "export_directory_unwritable"
    /// Creating, renaming or deleting the export entry failed for another reason (disk full, I/O error).
    case exportWriteFailed = "export_write_failed"
    /// The installed nbd-server has the 3.24 reload use-after-free.
    case nbdServerVersionUnsupported = "nbd_server_version_unsupported"
    /// `nbd-server -V` could not be run or did not print a version.
    case nbdServerVersionUnknown = "nbd_server_version_unknown"
    /// No running nbd-server to reload (pid file missing, unreadable or stale).
    case nbdServerNotRunning = "nbd_server_not_running"
    /// The server answered, but has no export of that name.
    case exportUnknown = "nbd_export_unknown"
    case connectionFailed = "nbd_connection_failed"
    case handshakeTimeout = "nbd_handshake_timeout"
    /// The peer does not speak fixed-newstyle NBD, or sent something malformed.
    case protocolError = "nbd_protocol_error"

    /// Whether retrying later can succeed without a human changing something. A missing
    /// device or server may come back; a bad name, a missing directory or an unsafe
    /// nbd-server stay wrong until someone fixes them.
    public var isTransient: Bool {
        switch self {
        case .exportTargetMissing, .exportWriteFailed, .nbdServerNotRunning, .exportUnknown,
            .connectionFailed, .handshakeTimeout:
            return true
        case .invalidVolumeId, .invalidExportName, .invalidDevicePath, .exportDirectoryMissing,
            .exportDirectoryUnwritable, .nbdServerVersionUnsupported, .nbdServerVersionUnknown, .protocolError:
            return false
        }
    }
}
