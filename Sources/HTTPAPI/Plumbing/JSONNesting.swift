/// How deeply a JSON request body nests, found by scanning its bytes (no recursion, so a
/// body of 60 000 `[` costs a loop, not a stack), and which top-level field holds the
/// deepest value.
///
/// Why a limit at all: a `metadata` object 510 levels deep was accepted and stored, and from
/// then on every read that embedded it went past the JSON encoder's own depth limit (see
/// `JSONResponse`). Requests are flat objects with at most a small `metadata` object;
/// `maximumDepth` leaves room for any sensible metadata and refuses the rest at the door.
enum JSONNesting {
    /// Levels of objects and arrays allowed inside one field of a request body
    /// (`{"metadata": {"a": {"b": 1}}}` is 2 levels inside `metadata`). One less than the
    /// database's limit on `request` (32, migration 0005, which counts `request` itself), so a
    /// body refused here is exactly one the database would refuse as a plain INSERT.
    static let maximumDepth = 31

    struct Deepest: Equatable {
        /// Levels inside the top-level field (0 for a scalar).
        var depth: Int
        /// The top-level field holding it; nil when the body itself is not an object.
        var field: String?
    }

    /// The deepest nesting below any top-level field of `bytes`. Assumes nothing about
    /// validity: the decoder judges that afterwards; this only counts brackets outside strings.
    static func deepest(in bytes: some Sequence<UInt8>) -> Deepest {
        var depth = 0
        var deepest = Deepest(depth: 0, field: nil)
        var inString = false
        var escaped = false
        var currentString: [UInt8] = []
        var lastTopLevelString: [UInt8]?
        var fieldOfOpenValue: String?
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 1 { lastTopLevelString = currentString }
                    continue
                }
                if depth == 1 && currentString.count < 256 { currentString.append(byte) }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                currentString.removeAll(keepingCapacity: true)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth == 2 {
                    // A value opening at the top level: the string before it is its key.
                    fieldOfOpenValue = lastTopLevelString.map { String(decoding: $0, as: UTF8.self) }
                }
                if depth - 1 > deepest.depth {
                    deepest = Deepest(depth: depth - 1, field: depth >= 2 ? fieldOfOpenValue : nil)
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth = max(0, depth - 1)
            default:
                break
            }
        }
        return deepest
    }
}
