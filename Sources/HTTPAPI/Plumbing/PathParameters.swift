import Foundation
import Hummingbird

extension RequestContext {
    /// A CloudStack UUID from the path (`{id}`), lower-cased; 400 naming the parameter otherwise.
    func cloudStackID(_ name: String, of what: String) throws -> String {
        let text = parameters.get(name) ?? ""
        let decoded = text.removingPercentEncoding ?? text
        guard let id = CloudStackID.parse(decoded) else {
            throw APIError.invalidField(name, "the \(what) id in the path must be a CloudStack UUID (8-4-4-4-12 hex digits), got \"\(decoded)\"",
                                        provided: .string(decoded))
        }
        return id
    }

    /// An operation id from the path; 400 when it is not a UUID.
    func operationID(_ name: String) throws -> String {
        try cloudStackID(name, of: "operation")
    }
}

/// Query-string filters, each checked against what it may be.
struct QueryFilters {
    let request: Request

    func text(_ name: String) -> String? {
        guard let value = request.uri.queryParameters.get(name), !value.isEmpty else { return nil }
        return value
    }

    /// One of `allowed`, or nil when absent.
    func oneOf(_ name: String, _ allowed: [String]) throws -> String? {
        guard let value = text(name) else { return nil }
        guard allowed.contains(value) else {
            throw APIError.invalidField(name, "query parameter '\(name)' must be one of \(allowed.joined(separator: ", ")), got \"\(value)\"",
                                        provided: .string(value))
        }
        return value
    }

    func uuid(_ name: String) throws -> String? {
        guard let value = text(name) else { return nil }
        guard let id = CloudStackID.parse(value) else {
            throw APIError.invalidField(name, "query parameter '\(name)' must be a CloudStack UUID (8-4-4-4-12 hex digits), got \"\(value)\"",
                                        provided: .string(value))
        }
        return id
    }

    func limit(default defaultValue: Int, maximum: Int) throws -> Int {
        guard let value = text("limit") else { return defaultValue }
        guard let number = Int(value), (1...maximum).contains(number) else {
            throw APIError.invalidField("limit", "query parameter 'limit' must be a whole number from 1 to \(maximum), got \"\(value)\"",
                                        provided: .string(value))
        }
        return number
    }

    func flag(_ name: String) throws -> Bool {
        guard let value = text(name) else { return false }
        switch value.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default:
            throw APIError.invalidField(name, "query parameter '\(name)' must be true or false, got \"\(value)\"", provided: .string(value))
        }
    }
}
