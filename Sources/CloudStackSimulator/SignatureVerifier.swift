import Crypto
import Foundation

/// Checks a request's signature the way apache/cloudstack
/// `server/src/main/java/com/cloud/api/ApiServer.java` `verifyRequest` does:
///
/// 1. names of all parameters except `signature` sorted case-sensitively
///    (`Collections.sort`), each `name=` + `URLEncoder.encode(value, UTF-8)` with `+`
///    replaced by `%20`, joined by `&`;
/// 2. `signature` and `apiKey` both present, else reject;
/// 3. with `signatureVersion=3`: `expires` present, parseable
///    (`DateUtil.parseTZDateString`) and not in the past, else reject;
/// 4. the apikey maps to a user, else reject;
/// 5. HMAC-SHA1 of the lower-cased string keyed with the user's secret, Base64,
///    compared in constant time with `signature`.
///
/// This is an independent implementation from the client's `CloudStackSigner` on purpose:
/// the simulator must catch a client that encodes differently from the server.
struct SignatureVerifier: Sendable {
    var apiKey: String
    var secretKey: String

    func verify(_ parameters: RequestParameters, now: Date) -> Bool {
        guard let signature = parameters.value(caseInsensitive: "signature"),
            let presentedKey = parameters.value(caseInsensitive: "apiKey")
        else { return false }

        if parameters.value(caseInsensitive: "signatureVersion") == "3" {
            guard let expiresText = parameters.value(caseInsensitive: "expires"),
                let expires = Self.parseTZDate(expiresText), expires >= now
            else { return false }
        }
        guard presentedKey == apiKey else { return false }

        var firstValues: [String: String] = [:]
        for (name, value) in parameters.ordered where name.caseInsensitiveCompare("signature") != .orderedSame {
            if firstValues[name] == nil { firstValues[name] = value }
        }
        let names = firstValues.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
        let unsigned = names.map { "\($0)=\(Self.javaURLEncode(firstValues[$0]!))" }.joined(separator: "&").lowercased()

        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(unsigned.utf8), using: SymmetricKey(data: Data(secretKey.utf8)))
        let computed = Data(mac).base64EncodedString()
        return Self.constantTimeEquals(computed, signature)
    }

    static func javaURLEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            let isLiteral = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "*") || byte == UInt8(ascii: "_")
            if isLiteral {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `DateUtil.parseTZDateString`: `yyyy-MM-dd'T'HH:mm:ssZ` (`+0000`), also accepting
    /// `+00:00` and `Z`.
    static func parseTZDate(_ text: String) -> Date? {
        let pattern = #"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})$"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
            let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
        else { return nil }
        func group(_ index: Int) -> String { String(text[Range(match.range(at: index), in: text)!]) }
        var components = DateComponents()
        components.year = Int(group(1))
        components.month = Int(group(2))
        components.day = Int(group(3))
        components.hour = Int(group(4))
        components.minute = Int(group(5))
        components.second = Int(group(6))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let utc = calendar.date(from: components) else { return nil }
        let zone = group(7)
        if zone == "Z" { return utc }
        let digits = zone.dropFirst().replacingOccurrences(of: ":", with: "")
        guard let hours = Int(digits.prefix(2)), let minutes = Int(digits.suffix(2)) else { return nil }
        let offset = TimeInterval(hours * 3600 + minutes * 60) * (zone.hasPrefix("-") ? -1 : 1)
        return utc.addingTimeInterval(-offset)
    }

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8)
        let right = Array(b.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    /// `yyyy-MM-dd'T'HH:mm:ssZ` in UTC, the form CloudStack uses for `created` and friends.
    static func formatTZDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d+0000", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }
}
