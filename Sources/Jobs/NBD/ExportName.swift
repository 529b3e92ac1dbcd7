import Primitives
/// NBD export names, and the checks that keep them from naming anything but an export.
///
/// An export name becomes a file name in nbdkit's directory, a `.conf` file name and an
/// INI section header for nbd-server, and a component of `nbd://host:port/NAME` URIs.
/// So it is built only from a validated volume UUID, and any name coming from outside
/// (an `unexport` request, a directory listing) is checked against a strict allowlist.
public enum ExportName {
    /// `migration-vol-<volume_id>`, as the original Volume Daemon named its exports.
    public static let prefix = "migration-vol-"
    /// Far below NBD's 4096-byte string limit and any file-name limit.
    public static let maximumLength = 100

    /// `b3bb9310-…` → `migration-vol-b3bb9310-…`. Only canonical lower-case UUIDs are
    /// accepted, so the same volume can never get two export names.
    public static func forVolume(_ volumeId: String) throws(NBDExportError) -> String {
        guard VolumeUUID.isCanonicalLowercase(volumeId) else {
            throw NBDExportError(
                .invalidVolumeId,
                "volume id \(quotedForMessage(volumeId)) is not a lower-case CloudStack volume UUID "
                    + "(8-4-4-4-12 hex digits and dashes); export names are built only from such ids"
            )
        }
        return prefix + volumeId
    }

    /// The volume id inside a name built by `forVolume`, or nil for any other name.
    public static func volumeId(inExportName name: String) -> String? {
        guard name.hasPrefix(prefix) else { return nil }
        let id = String(name.dropFirst(prefix.count))
        return VolumeUUID.isCanonicalLowercase(id) ? id : nil
    }

    /// Accepts only names made of ASCII letters, digits, `.`, `_` and `-`, not starting
    /// with `.` (hidden and temporary entries, `.` and `..`), without `..`, and at most
    /// `maximumLength` bytes. That excludes `/`, `[`, `]`, `=`, `#`, spaces, newlines and
    /// NUL: no path traversal, no INI section or key injection, no extra lines.
    public static func validate(_ name: String) throws(NBDExportError) {
        func reject(_ reason: String) -> NBDExportError {
            NBDExportError(.invalidExportName, "export name \(quotedForMessage(name)) \(reason); export names are built from the volume id (\(prefix)<volume_id>)")
        }
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw reject("is empty") }
        guard bytes.count <= maximumLength else { throw reject("is \(bytes.count) bytes long, over the \(maximumLength)-byte limit") }
        if let bad = bytes.first(where: { !isAllowed($0) }) {
            throw reject("contains \(describe(bad)), which is not allowed (only letters, digits, '.', '_' and '-')")
        }
        guard bytes[0] != UInt8(ascii: ".") else { throw reject("starts with '.'") }
        guard !name.contains("..") else { throw reject("contains '..'") }
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        switch byte {
        case 0: return "a NUL byte"
        case UInt8(ascii: "\n"): return "a newline"
        case UInt8(ascii: "\r"): return "a carriage return"
        case UInt8(ascii: " "): return "a space"
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        default: return "the byte 0x" + String(byte, radix: 16)
        }
    }
}
