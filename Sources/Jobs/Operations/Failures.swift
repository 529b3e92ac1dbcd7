import Primitives
import CloudStack
import Worker

// Each boundary's error type reports itself to the queue directly, so a handler can let
// CloudStack, device and NBD errors propagate unchanged: their stable code lands in
// `error_code`, their sentence in `error`, and `isTransient` decides retry or fail.

/// `code` (the raw value of `kind`), `message` and `isTransient` are already properties of the right types.
extension CloudStackError: OperationFailure {}

/// The by-id devices' and NBD's errors (`DeviceError`, `NBDExportError`).
extension CodedError: OperationFailure {}
