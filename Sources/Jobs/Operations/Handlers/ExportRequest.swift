import Primitives
import Foundation
import Schema
import Worker

/// The `request` of an `export` operation (CONTRACT §3), with its values checked.
///
/// `vm_name` and `job_id` are stored as data only (never part of a path or an export
/// name), but they end up in logs, dashboards and API responses, so they must be one
/// readable line of bounded length.
struct ExportRequest: Decodable, Sendable {
    /// The orchestrator's replication job, when it names one (the original daemon's export
    /// API had none, so its clients send none).
    let jobId: String?
    let vmName: String
    let diskUnitNumber: Int

    static let maximumTextLength = 255

    enum CodingKeys: String, CodingKey {
        case jobId = "job_id"
        case vmName = "vm_name"
        case diskUnitNumber = "disk_unit_number"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jobId = try container.decodeIfPresent(String.self, forKey: .jobId)
        vmName = try container.decode(String.self, forKey: .vmName)
        diskUnitNumber = try Self.decodeDiskUnitNumber(container)
    }

    /// An integer, with a message naming the field for the shapes JSONDecoder describes
    /// poorly (a fraction is reported as "not valid JSON" without the field's name).
    private static func decodeDiskUnitNumber(_ container: KeyedDecodingContainer<CodingKeys>) throws -> Int {
        if let number = try? container.decode(Int.self, forKey: .diskUnitNumber) { return number }
        if let number = try? container.decode(Double.self, forKey: .diskUnitNumber) {
            throw QueueFailure.invalidRequest("field 'disk_unit_number' must be a whole number between 0 and \(Int32.max) (got \(number))")
        }
        if let text = try? container.decode(String.self, forKey: .diskUnitNumber) {
            throw QueueFailure.invalidRequest(
                "field 'disk_unit_number' must be an integer, not a string (got \(quotedForMessage(text))); send it as a JSON number")
        }
        // Missing, null or another type: the decoding error names the field and the problem.
        return try container.decode(Int.self, forKey: .diskUnitNumber)
    }

    /// Decodes and validates, as `RequestDecoding` says.
    static func parse(_ operation: ClaimedOperation) throws -> ExportRequest {
        let request = try JSONDecoder().decode(ExportRequest.self, from: Data(operation.request.utf8))
        if let jobId = request.jobId { try validateText(jobId, field: "job_id") }
        try validateText(request.vmName, field: "vm_name")
        // The column is a PostgreSQL integer; a larger number would fail only at commit.
        guard (0...Int(Int32.max)).contains(request.diskUnitNumber) else {
            throw QueueFailure.invalidRequest(
                "field 'disk_unit_number' must be an integer between 0 and \(Int32.max) (got \(request.diskUnitNumber))")
        }
        return request
    }

    static func validateText(_ value: String, field: String) throws {
        guard !value.isEmpty else {
            throw QueueFailure.invalidRequest("field '\(field)' must not be empty")
        }
        guard value.count <= maximumTextLength else {
            throw QueueFailure.invalidRequest(
                "field '\(field)' is \(value.count) characters long, over the \(maximumTextLength)-character limit")
        }
        if let bad = value.unicodeScalars.first(where: isControl) {
            throw QueueFailure.invalidRequest(
                "field '\(field)' contains the control character U+\(String(format: "%04X", bad.value)) "
                    + "(newline, tab, NUL, …), which is not allowed: \(quotedForMessage(value))")
        }
    }

    /// C0, DEL and C1 controls: anything that would break a log line or a table cell.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}

/// The ids an export-family operation works on: its `volume_id` column, and the export
/// name derived from it.
enum ExportTarget {
    static func volumeId(of operation: ClaimedOperation) throws -> String {
        guard let volumeId = operation.volumeId, !volumeId.isEmpty else {
            throw QueueFailure.invalidRequest("an \(operation.type) operation needs the volume_id column set to the volume's UUID")
        }
        return volumeId
    }
}
