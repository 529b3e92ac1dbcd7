/// CloudStack volume ids are RFC 4122 UUIDs in the canonical 8-4-4-4-12 form
/// (Java's `UUID.toString()`, always lower-case). Everything that turns a volume id
/// into a path, a disk serial or an export name checks it here first, so a hostile
/// or mistyped id never reaches the file system or a config file.
package enum VolumeUUID {
    package static let groupLengths = [8, 4, 4, 4, 12]

    /// True for the canonical form with lower-case hex digits only.
    package static func isCanonicalLowercase(_ text: String) -> Bool {
        hasUUIDShape(text, allowUppercase: false)
    }

    /// True for the canonical form with hex digits of either case.
    package static func isUUID(_ text: String) -> Bool {
        hasUUIDShape(text, allowUppercase: true)
    }

    private static func hasUUIDShape(_ text: String, allowUppercase: Bool) -> Bool {
        let groups = text.utf8.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard groups.count == groupLengths.count else { return false }
        for (group, length) in zip(groups, groupLengths) {
            guard group.count == length else { return false }
            for byte in group {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"):
                    continue
                case UInt8(ascii: "A")...UInt8(ascii: "F") where allowUppercase:
                    continue
                default:
                    return false
                }
            }
        }
        return true
    }
}
