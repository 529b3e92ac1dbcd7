import Glibc

/// The names in a by-id directory at one instant, read with one `readdir` pass and indexed
/// without case, so that finding many volumes' links (a reconcile pass over hundreds of
/// attached disks) reads the directory once rather than once per volume.
public struct ByIdDirectoryListing: Sendable {
    public let directory: String
    /// Entry names by their lower-case spelling (a name may exist in several spellings).
    private let namesByLowercased: [String: [String]]

    /// An unreadable or missing directory lists nothing, as no links at all.
    init(reading directory: String) {
        self.directory = directory
        var names: [String: [String]] = [:]
        if let stream = opendir(directory) {
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
                }
                names[name.lowercased(), default: []].append(name)
            }
        }
        namesByLowercased = names
    }

    /// The entries named like one of `names` in any case, as paths, in the order of `names`
    /// (an exact spelling before other spellings of the same name, those by name).
    func entries(namedLike names: [String]) -> [String] {
        var seen: Set<String> = []
        var paths: [String] = []
        for wanted in names where seen.insert(wanted.lowercased()).inserted {
            let present = namesByLowercased[wanted.lowercased(), default: []]
                .sorted { ($0 == wanted ? 0 : 1, $0) < ($1 == wanted ? 0 : 1, $1) }
            paths += present.map { directory + "/" + $0 }
        }
        return paths
    }
}
