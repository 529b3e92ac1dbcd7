import Foundation

/// Any JSON value. The API's shapes are built from these so every documented key is sent,
/// `null` included (the original daemon's clients read `"response": null`), and so the
/// `request` / `response` columns (jsonb, kept as text) are embedded as JSON, not as strings.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text (any value, not only objects).
    public init(text: String) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// The JSON an `Encodable` value encodes to; dates as ISO 8601, as the CLI prints them.
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        self = try JSONDecoder().decode(JSONValue.self, from: try encoder.encode(value))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// `.string`, or `.null` for nil.
    static func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// `.int`, or `.null` for nil.
    static func number(_ value: Int?) -> JSONValue { value.map { .int(Int64($0)) } ?? .null }

    /// An RFC 3339 time with milliseconds (Go's time.Time reads it), or `.null`.
    static func time(_ date: Date?) -> JSONValue {
        date.map { .string($0.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))) } ?? .null
    }

    /// Embedded JSON text (a jsonb column); text that is not JSON is sent as a string.
    static func embedded(_ text: String?) -> JSONValue {
        guard let text else { return .null }
        return (try? JSONValue(text: text)) ?? .string(text)
    }

    /// An object's field, or `.null` (also for anything that is not an object).
    func field(_ name: String) -> JSONValue {
        guard case .object(let fields) = self else { return .null }
        return fields[name] ?? .null
    }

    /// The JSON text of this value, keys sorted, slashes unescaped; throws when the encoder
    /// refuses it (nesting past its depth limit, a non-finite number).
    func encodedText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// `encodedText()` for values built from a request's own small fields (messages): never
    /// used for an answer's body, which goes through `JSONResponse` and fails loudly instead.
    func jsonText() -> String {
        (try? encodedText()) ?? "(a value too deeply nested to show)"
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
