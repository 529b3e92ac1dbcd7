import Foundation

/// Typed access to a request body's fields. Every refusal names the field, says what it
/// must be, and echoes what was sent. Fields the route does not know are ignored: the
/// original daemon's Go client sends some (e.g. `volume_id` in an attach body).
struct BodyFields: Sendable {
    let fields: [String: JSONValue]

    init(_ fields: [String: JSONValue]) {
        self.fields = fields
    }

    /// A non-empty, single-line string of at most `maximumLength` characters.
    func string(_ name: String, maximumLength: Int = 255, hint: String) throws -> String {
        guard let value = fields[name], value != .null else {
            throw APIError.invalidField(name, "field '\(name)' is required: \(hint)")
        }
        guard case .string(let text) = value else {
            throw APIError.invalidField(name, "field '\(name)' must be a string (\(hint)), not \(value.kindName)", provided: value)
        }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw APIError.invalidField(name, "field '\(name)' must not be empty: \(hint)", provided: value)
        }
        guard text.count <= maximumLength else {
            throw APIError.invalidField(name, "field '\(name)' is \(text.count) characters long; at most \(maximumLength) are allowed")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw APIError.invalidField(name, "field '\(name)' must be one line without control characters (newline, tab, NUL)", provided: value)
        }
        return text
    }

    /// A CloudStack UUID (8-4-4-4-12 hex digits), lower-cased as CloudStack writes them.
    func uuid(_ name: String, of what: String) throws -> String {
        let text = try string(name, maximumLength: 36, hint: "the \(what)'s CloudStack UUID, e.g. 3f9c2a10-8b1e-4c6d-9f00-1a2b3c4d5e6f")
        guard let id = CloudStackID.parse(text) else {
            throw APIError.invalidField(name, "field '\(name)' must be the \(what)'s CloudStack UUID (8-4-4-4-12 hex digits), got \"\(text)\"",
                                        provided: .string(text))
        }
        return id
    }

    /// `uuid(_:of:)` when the field is present and not null; nil otherwise.
    func optionalUUID(_ name: String, of what: String) throws -> String? {
        guard fields[name].map({ $0 != .null }) == true else { return nil }
        return try uuid(name, of: what)
    }

    /// A whole number in `range`; `requirement` completes "field 'x' must be …".
    func wholeNumber(_ name: String, in range: ClosedRange<Int64>, requirement: String) throws -> Int64 {
        guard let value = fields[name], value != .null else {
            throw APIError.invalidField(name, "field '\(name)' is required: it must be \(requirement)")
        }
        let number: Int64
        switch value {
        case .int(let whole):
            number = whole
        case .double(let fraction) where fraction.rounded() == fraction && abs(fraction) < 9e18:
            number = Int64(fraction)
        default:
            throw APIError.invalidField(name, "field '\(name)' must be \(requirement), got \(value.jsonText())", provided: value)
        }
        guard range.contains(number) else {
            throw APIError.invalidField(name, "field '\(name)' must be \(requirement), got \(number)", provided: value)
        }
        return number
    }

    /// true or false; `defaultValue` when absent or null.
    func bool(_ name: String, default defaultValue: Bool) throws -> Bool {
        guard let value = fields[name], value != .null else { return defaultValue }
        guard case .bool(let flag) = value else {
            throw APIError.invalidField(name, "field '\(name)' must be true or false, not \(value.jsonText())", provided: value)
        }
        return flag
    }

    /// A JSON object, or nil when absent or null.
    func optionalObject(_ name: String) throws -> [String: JSONValue]? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .object(let object) = value else {
            throw APIError.invalidField(name, "field '\(name)' must be a JSON object such as {\"purpose\": \"migration\"}, not \(value.kindName)", provided: value)
        }
        return object
    }

    /// An optional string (absent or null: nil), checked like `string`.
    func optionalString(_ name: String, maximumLength: Int = 255, hint: String) throws -> String? {
        guard let value = fields[name], value != .null else { return nil }
        return try string(name, maximumLength: maximumLength, hint: hint)
    }
}

/// CloudStack ids are UUIDs in the canonical 8-4-4-4-12 form, lower case.
enum CloudStackID {
    /// The id lower-cased, or nil when `text` is not a canonical UUID.
    static func parse(_ text: String) -> String? {
        guard text.utf8.count == 36, UUID(uuidString: text) != nil else { return nil }
        return text.lowercased()
    }
}
