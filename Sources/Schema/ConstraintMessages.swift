/// What each `volume_operations` constraint means, in the words an orchestrator needs: the
/// field and the fix. Used by the client, the CLI and the HTTP API to explain a rejected insert.
public enum ConstraintMessages {
    public static let byName: [String: String] = [
        "volume_operations_type_known":
            "type must be one of the volume_operation_types table's rows (SELECT type FROM volume_operation_types)",
        "volume_operations_status_known":
            "status must be one of pending, executing, completed, failed, cancelled",
        "volume_operations_volume_id_required":
            "volume_id is required for this operation type (its volume_operation_types row says needs_volume_id; only create goes without)",
        "volume_operations_volume_id_is_uuid":
            "volume_id must be a CloudStack volume UUID such as 3f9c2a10-8b1e-4c6d-9f00-1a2b3c4d5e6f",
        "volume_operations_vm_id_required":
            "vm_id is required for this operation type (its volume_operation_types row says needs_vm_id: attach, export)",
        "volume_operations_vm_id_is_uuid":
            "vm_id must be a CloudStack VM UUID such as 9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        "volume_operations_request_is_object":
            "request must be a JSON object, e.g. {\"size\": 10737418240}",
        "volume_operations_request_size":
            "request must be at most 64 KiB of JSON",
        "volume_operations_request_depth":
            "request must not nest JSON objects and arrays more than 32 levels deep (counting request itself)",
        "volume_operations_idempotency_key_size":
            "idempotency_key must be 1 to 200 characters",
        "volume_operations_attempts_valid":
            "max_attempts must be between 1 and 100",
        "volume_operations_idempotency_key":
            "an operation with this idempotency_key already exists; reuse its id or pick a new key",
    ]

    /// A sentence for a rejected statement: the constraint's meaning when known, else the
    /// server's own message.
    public static func explain(_ error: any Error) -> String {
        if let constraint = databaseConstraint(error), let message = byName[constraint] {
            return message
        }
        return databaseErrorText(error)
    }
}
