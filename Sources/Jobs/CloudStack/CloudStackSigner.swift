import Crypto
import Foundation

/// Signs CloudStack API requests exactly the way the management server verifies them.
///
/// Matched against apache/cloudstack `server/src/main/java/com/cloud/api/ApiServer.java`
/// (`verifyRequest`): every parameter except `signature`, names sorted case-sensitively
/// (`Collections.sort` on Java strings, i.e. UTF-16 code unit order), each pair rendered
/// as `name=` + `URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20")`, pairs joined
/// with `&`, the whole string lower-cased, HMAC-SHA1 keyed with the secret key, and the
/// digest in padded standard Base64 (commons-codec `Base64.encodeBase64String`).
///
/// The same encoding is used for the query on the wire: the servlet URL-decodes the query
/// before `verifyRequest` re-encodes it, so a literal `+` must travel as `%2B` (otherwise it
/// decodes to a space and the signature no longer matches).
public struct CloudStackSigner: Sendable {
    public let apiKey: String
    private let secretKey: String

    public init(apiKey: String, secretKey: String) {
        self.apiKey = apiKey
        self.secretKey = secretKey
    }

    /// The string that is HMAC'd: sorted, encoded, joined and lower-cased.
    /// `signature` is ignored as the server ignores it; on duplicate names the first wins,
    /// as the server reads `((String[]) value)[0]`.
    public static func stringToSign(_ parameters: [(name: String, value: String)]) -> String {
        canonicalQuery(parameters).lowercased()
    }

    /// `name=value&…` sorted case-sensitively with Java `URLEncoder` encoding, not lower-cased:
    /// this is what goes on the wire (minus the signature).
    public static func canonicalQuery(_ parameters: [(name: String, value: String)]) -> String {
        var firstValueByName: [String: String] = [:]
        var order: [String] = []
        for (name, value) in parameters where name.lowercased() != "signature" {
            if firstValueByName[name] == nil {
                firstValueByName[name] = value
                order.append(name)
            }
        }
        let sortedNames = order.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
        return sortedNames
            .map { "\($0)=\(javaURLEncode(firstValueByName[$0] ?? ""))" }
            .joined(separator: "&")
    }

    /// HMAC-SHA1 over `stringToSign(parameters)`, standard padded Base64.
    public func signature(for parameters: [(name: String, value: String)]) -> String {
        let message = Data(Self.stringToSign(parameters).utf8)
        let key = SymmetricKey(data: Data(secretKey.utf8))
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key)
        return Data(mac).base64EncodedString()
    }

    /// A query ready for the wire and the signature inside it (kept apart so callers can
    /// scrub it from anything they log or report).
    public struct SignedQuery: Sendable {
        public var query: String
        public var signature: String
    }

    /// The complete query string to send: `apiKey`, `command`, `response=json`, the
    /// caller's parameters, the optional version 3 fields, and `signature` last.
    public func signedQuery(
        command: String,
        parameters: [(name: String, value: String)],
        expires: Date?
    ) -> SignedQuery {
        var all: [(name: String, value: String)] = [
            ("apiKey", apiKey), ("command", command), ("response", "json"),
        ]
        all.append(contentsOf: parameters)
        if let expires {
            all.append(("signatureVersion", "3"))
            all.append(("expires", Self.formatExpires(expires)))
        }
        let signature = signature(for: all)
        return SignedQuery(
            query: Self.canonicalQuery(all) + "&signature=" + Self.javaURLEncode(signature),
            signature: signature
        )
    }

    /// Java `URLEncoder.encode(value, UTF-8)` followed by CloudStack's `+` → `%20`:
    /// only `A-Z a-z 0-9 . - * _` stay literal; everything else is `%XX` (upper-case hex)
    /// of its UTF-8 bytes, space included.
    public static func javaURLEncode(_ value: String) -> String {
        var encoded = ""
        encoded.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "_"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + hexDigits[Int(byte >> 4)] + hexDigits[Int(byte & 0x0F)]
            }
        }
        return encoded
    }

    private static let hexDigits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]

    /// `yyyy-MM-dd'T'HH:mm:ssZ` in UTC, e.g. `2030-01-01T00:00:00+0000` — the form
    /// `DateUtil.parseTZDateString` accepts for `expires`.
    public static func formatExpires(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d+0000",
            c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0
        )
    }
}
