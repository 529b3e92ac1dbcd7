import Foundation

/// The parameters of one API request, decoded the way the servlet container does it
/// (`HttpServletRequest.getParameterMap` plus ApiServlet's `utf8Fixup`): query string and
/// form body merged, `%XX` decoded as UTF-8 and `+` decoded as a space. Names keep their
/// case; every value of a repeated name is kept but only the first is used, as
/// ApiServer.java reads `((String[]) value)[0]`.
struct RequestParameters: Sendable {
    private(set) var ordered: [(name: String, value: String)] = []

    init(query: String?, formBody: String?) {
        for source in [query, formBody].compactMap({ $0 }) where !source.isEmpty {
            for pair in source.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = Self.formDecode(parts[0])
                let value = parts.count > 1 ? Self.formDecode(parts[1]) : ""
                ordered.append((name, value))
            }
        }
    }

    /// The first value for `name`, compared case-sensitively like CloudStack's HashMap.
    subscript(name: String) -> String? {
        ordered.first { $0.name == name }?.value
    }

    /// The first value for `name` ignoring case (ApiServer does this for apiKey,
    /// signature, signatureVersion and expires).
    func value(caseInsensitive name: String) -> String? {
        ordered.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// `application/x-www-form-urlencoded` decoding (`java.net.URLDecoder`).
    static func formDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]), let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
