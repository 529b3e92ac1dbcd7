/// An ordered JSON tree for the simulator's replies, so they keep the field order real
/// CloudStack sends (Gson serializes fields in declaration order) and can be rendered as
/// either JSON or the XML CloudStack answers with when `response=json` is missing.
enum JSONValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case array([JSONValue])
    case object([(String, JSONValue)])

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        lhs.jsonText == rhs.jsonText
    }

    static func int(_ value: Int) -> JSONValue { .int(Int64(value)) }

    /// Builds an object, dropping fields whose value is nil (Gson omits nulls).
    static func object(_ fields: [(String, JSONValue?)]) -> JSONValue {
        .object(fields.compactMap { name, value in value.map { (name, $0) } })
    }

    var jsonText: String {
        switch self {
        case .string(let text): return Self.quoted(text)
        case .int(let number): return String(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .array(let items): return "[" + items.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.map { Self.quoted($0.0) + ":" + $0.1.jsonText }.joined(separator: ",") + "}"
        }
    }

    /// CloudStack's XML form: objects become child elements, arrays repeat their element.
    func xmlText(elementName: String) -> String {
        switch self {
        case .string(let text): return "<\(elementName)>\(Self.xmlEscaped(text))</\(elementName)>"
        case .int(let number): return "<\(elementName)>\(number)</\(elementName)>"
        case .bool(let flag): return "<\(elementName)>\(flag)</\(elementName)>"
        case .array(let items): return items.map { $0.xmlText(elementName: elementName) }.joined()
        case .object(let fields):
            return "<\(elementName)>" + fields.map { $0.1.xmlText(elementName: $0.0) }.joined() + "</\(elementName)>"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func xmlEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;")
            .replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
