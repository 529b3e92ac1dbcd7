import Foundation

// The original daemon's Go client types (DRDAVIDBANNER/sendense: source/current/sha/common/
// volume_client.go, sha/failover/multi_volume_snapshot_service.go), as Swift Decodables that
// decode the way Go's encoding/json does: a missing key or null leaves the zero value (or nil
// for a pointer), a value of another JSON type is an error, a time.Time must be RFC 3339.
// Written for these tests from the Go struct declarations (field names and types).

struct GoDecodingError: Error, CustomStringConvertible {
    let description: String
}

extension KeyedDecodingContainer {
    /// Go `string`: "" when missing or null.
    func goString(_ key: Key) throws -> String { try decodeIfPresent(String.self, forKey: key) ?? "" }
    /// Go `*string`.
    func goStringPointer(_ key: Key) throws -> String? { try decodeIfPresent(String.self, forKey: key) }
    /// Go `int` / `int64`: a JSON number without a fraction; 0 when missing or null.
    func goInt(_ key: Key) throws -> Int64 { try decodeIfPresent(Int64.self, forKey: key) ?? 0 }
    /// Go `bool`.
    func goBool(_ key: Key) throws -> Bool { try decodeIfPresent(Bool.self, forKey: key) ?? false }
    /// Go `time.Time` (RFC 3339, fractional seconds allowed); nil for Go's zero time (missing or null).
    func goTime(_ key: Key) throws -> Date? {
        guard let text = try decodeIfPresent(String.self, forKey: key) else { return nil }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        throw GoDecodingError(description: "\(key.stringValue): \"\(text)\" is not RFC 3339, which Go's time.Time requires")
    }
    /// Go `map[string]string`: every value a string.
    func goStringMap(_ key: Key) throws -> [String: String] { try decodeIfPresent([String: String].self, forKey: key) ?? [:] }
    /// Go `map[string]interface{}`: an object (or null).
    func goObject(_ key: Key) throws -> [String: AnyGoValue] { try decodeIfPresent([String: AnyGoValue].self, forKey: key) ?? [:] }
}

/// Go `interface{}` inside a map: whatever JSON holds.
enum AnyGoValue: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([AnyGoValue]), object([String: AnyGoValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([AnyGoValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: AnyGoValue].self)) }
    }

    /// Go's `value.(string)` type assertion.
    var string: String? { if case .string(let text) = self { text } else { nil } }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    init(_ name: String) { stringValue = name }
}

/// `common.VolumeOperation`.
struct GoVolumeOperation: Decodable {
    let id, type, status, volumeID, error: String
    let vmID: String?
    let request, response: [String: AnyGoValue]
    let createdAt, updatedAt, completedAt: Date?

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        id = try c.goString(AnyKey("id")); type = try c.goString(AnyKey("type")); status = try c.goString(AnyKey("status"))
        volumeID = try c.goString(AnyKey("volume_id")); vmID = try c.goStringPointer(AnyKey("vm_id"))
        request = try c.goObject(AnyKey("request")); response = try c.goObject(AnyKey("response"))
        error = try c.goString(AnyKey("error"))
        createdAt = try c.goTime(AnyKey("created_at")); updatedAt = try c.goTime(AnyKey("updated_at"))
        completedAt = try c.goTime(AnyKey("completed_at"))
    }
}

/// `common.DeviceMapping`.
struct GoDeviceMapping: Decodable {
    let id, volumeID, vmID, devicePath, cloudStackState, linuxState: String
    let size: Int64
    let lastSync, createdAt, updatedAt: Date?

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        id = try c.goString(AnyKey("id")); volumeID = try c.goString(AnyKey("volume_id")); vmID = try c.goString(AnyKey("vm_id"))
        devicePath = try c.goString(AnyKey("device_path")); cloudStackState = try c.goString(AnyKey("cloudstack_state"))
        linuxState = try c.goString(AnyKey("linux_state")); size = try c.goInt(AnyKey("size"))
        lastSync = try c.goTime(AnyKey("last_sync")); createdAt = try c.goTime(AnyKey("created_at"))
        updatedAt = try c.goTime(AnyKey("updated_at"))
    }
}

/// `common.VolumeMapping` (ListVolumes); `attached_at` is a Go string there.
struct GoVolumeMapping: Decodable {
    let volumeID, vmID, devicePath, attachedAt: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        volumeID = try c.goString(AnyKey("volume_id")); vmID = try c.goString(AnyKey("vm_id"))
        devicePath = try c.goString(AnyKey("device_path")); attachedAt = try c.goString(AnyKey("attached_at"))
    }
}

/// `common.NBDExportInfo`.
struct GoNBDExportInfo: Decodable {
    let id, volumeID, exportName, devicePath, status: String
    let port: Int64
    let createdAt, updatedAt: Date?
    let metadata: [String: String]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        id = try c.goString(AnyKey("id")); volumeID = try c.goString(AnyKey("volume_id"))
        exportName = try c.goString(AnyKey("export_name")); devicePath = try c.goString(AnyKey("device_path"))
        port = try c.goInt(AnyKey("port")); status = try c.goString(AnyKey("status"))
        createdAt = try c.goTime(AnyKey("created_at")); updatedAt = try c.goTime(AnyKey("updated_at"))
        metadata = try c.goStringMap(AnyKey("metadata"))
    }
}

/// `failover.VolumeSnapshot` (the snapshot service's reading of `GET /snapshots/vm/{id}`).
struct GoVolumeSnapshot: Decodable {
    let volumeUUID, vmContextID, volumeName, devicePath, operationMode, snapshotStatus: String
    let snapshotID: String?
    let snapshotCreatedAt: Date?

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        volumeUUID = try c.goString(AnyKey("volume_uuid")); vmContextID = try c.goString(AnyKey("vm_context_id"))
        volumeName = try c.goString(AnyKey("volume_name")); devicePath = try c.goString(AnyKey("device_path"))
        operationMode = try c.goString(AnyKey("operation_mode")); snapshotStatus = try c.goString(AnyKey("snapshot_status"))
        snapshotID = try c.goStringPointer(AnyKey("snapshot_id")); snapshotCreatedAt = try c.goTime(AnyKey("snapshot_created_at"))
    }
}

/// `{snapshots: [...]}` as `getVMSnapshots` declares it.
struct GoSnapshotsResponse: Decodable {
    let snapshots: [GoVolumeSnapshot]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        snapshots = try c.decodeIfPresent([GoVolumeSnapshot].self, forKey: AnyKey("snapshots")) ?? []
    }
}

/// The `{error, code, details}` that `handleErrorResponse` reads.
struct GoErrorResponse: Decodable {
    let error, code: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        error = try c.goString(AnyKey("error")); code = try c.goString(AnyKey("code"))
    }
}
