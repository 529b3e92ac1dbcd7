import NBD
import Devices
import CloudStack
import Worker

// Each boundary's error type reports itself to the queue directly, so a handler can let
// CloudStack, device and NBD errors propagate unchanged: their stable code lands in
// `error_code`, their sentence in `error`, and `isTransient` decides retry or fail.

/// `code` (the raw value of `kind`), `message` and `isTransient` are already properties of the right types.
extension CloudStackError: OperationFailure {}

/// The typed code is `kind`; the queue gets its raw value (`device_link_timeout`, …).
extension DeviceError: OperationFailure {
    public var code: String { kind.rawValue }
}

/// The typed code is `kind`; the queue gets its raw value (`nbd_export_unknown`, …).
extension NBDExportError: OperationFailure {
    public var code: String { kind.rawValue }
}
