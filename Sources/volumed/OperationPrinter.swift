import Primitives
import Foundation
import Operations
import Schema

/// How the CLI shows operations.
enum OperationPrinter {
    static func json(_ record: OperationRecord, pretty: Bool = true) -> String {
        var object: [String: Any] = [
            "id": record.id.uuidString.lowercased(), "type": record.type, "status": record.status.rawValue,
            "attempts": record.attempts, "created_at": iso(record.createdAt), "updated_at": iso(record.updatedAt),
        ]
        object["volume_id"] = record.volumeId ?? NSNull()
        object["vm_id"] = record.vmId ?? NSNull()
        object["request"] = parse(record.request)
        object["response"] = record.response.map(parse) ?? NSNull()
        object["error"] = record.error ?? NSNull()
        object["error_code"] = record.errorCode ?? NSNull()
        object["completed_at"] = record.completedAt.map(iso) ?? NSNull()
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: options)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func table(_ records: [OperationRecord]) -> String {
        var lines = ["ID                                    TYPE      STATUS     VOLUME                                ATTEMPTS  AGE     ERROR"]
        for record in records {
            let age = Int(Date().timeIntervalSince(record.createdAt))
            lines.append([
                record.id.uuidString.lowercased(),
                record.type.padding(toLength: 9, withPad: " ", startingAt: 0),
                record.status.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0),
                (record.volumeId ?? "-").padding(toLength: 37, withPad: " ", startingAt: 0),
                "\(record.attempts)/\(record.maxAttempts)".padding(toLength: 9, withPad: " ", startingAt: 0),
                "\(age)s".padding(toLength: 7, withPad: " ", startingAt: 0),
                record.errorCode.map { "\($0): \(record.error ?? "")" } ?? "",
            ].joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    /// `ops --watch`: short ids, and the current step (or the error) where the wide table has
    /// the whole error; each line cut to `width`.
    static func compactTable(_ records: [OperationRecord], width: Int, now: Date = Date()) -> String {
        func column(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
        func short(_ id: String?) -> String { id.map { String($0.prefix(8)) } ?? "-" }
        var lines = ["ID       TYPE      STATUS     VOLUME   TRY  AGE      STEP / ERROR"]
        for record in records {
            let detail = record.status == .failed
                ? "\(record.errorCode ?? "failed"): \(record.error ?? "")"
                : OperationStep.describe(record, now: now)
            let line = [
                short(record.id.uuidString.lowercased()), column(record.type, 9), column(record.status.rawValue, 10),
                column(short(record.volumeId), 8), column("\(record.attempts)/\(record.maxAttempts)", 4),
                column(ageText(now.timeIntervalSince(record.createdAt)), 8), detail,
            ].joined(separator: " ")
            lines.append(line.count > width - 1 ? String(line.prefix(max(20, width - 2))) + "…" : line)
        }
        if records.isEmpty { lines.append("(no operations)") }
        return lines.joined(separator: "\n")
    }

    private static func parse(_ text: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
    }

    private static func iso(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
