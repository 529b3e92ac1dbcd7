/// One nbd-server export as a file of its own in the server's `includedir`, the
/// original Volume Daemon's layout: `migration-vol-<id>.conf` holding one section.
///
/// `readonly = false` because replication writes the source disk into this volume
/// through the export; `multifile` and `copyonwrite` are spelled out as the original
/// did, so a changed server default cannot silently turn writes into a throwaway overlay.
enum NbdServerExportFile {
    /// nbd-server's includedir reads only files ending in `.conf`.
    static let suffix = ".conf"

    static func fileName(for exportName: String) -> String { exportName + suffix }

    /// The caller has validated both values: the name cannot close the section header
    /// or start a new one, and the path is a single line.
    static func contents(exportName: String, devicePath: String) -> String {
        """
        [\(exportName)]
        exportname = \(devicePath)
        readonly = false
        multifile = false
        copyonwrite = false

        """
    }

    /// The export a file describes: its section name and `exportname` value.
    static func parse(_ text: String) -> ExportEntry? {
        var section: String?
        var path: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") && line.hasSuffix("]") && section == nil {
                section = String(line.dropFirst().dropLast())
            } else if let equals = line.firstIndex(of: "="),
                line[..<equals].trimmingCharacters(in: .whitespaces) == "exportname"
            {
                path = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            }
        }
        guard let section, let path else { return nil }
        return ExportEntry(name: section, targetPath: path)
    }
}
