import Schema

/// The original daemon's operation object: `{id, type, status, volume_id, vm_id, request,
/// response, error, created_at, updated_at, completed_at}`, every key present (null when
/// unset). `error_code` and `attempts` are added: the stable failure code and the retry
/// count (CONTRACT §2) are what programs need, and unknown keys are ignored by its clients.
enum OperationShape {
    static func json(_ record: OperationRecord) -> JSONValue {
        .object([
            "id": .string(record.id.uuidString.lowercased()),
            "type": .string(record.type),
            "status": .string(record.status.rawValue),
            "volume_id": .text(record.volumeId),
            "vm_id": .text(record.vmId),
            "request": .embedded(record.request),
            "response": .embedded(record.response),
            "error": .text(record.error),
            "error_code": .text(record.errorCode),
            "attempts": .number(record.attempts),
            "created_at": .time(record.createdAt),
            "updated_at": .time(record.updatedAt),
            "completed_at": .time(record.completedAt),
        ])
    }
}
