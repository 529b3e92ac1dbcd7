import Foundation

/// Finds the NBD command-line tools the dev services and tests run, with an error that
/// says which package to install when one is missing.
public enum NbdTools {
    public struct NotFound: Error, CustomStringConvertible, Sendable {
        public let tool: String
        public let searched: [String]

        public var description: String {
            "\(tool) was not found (searched \(searched.joined(separator: ":"))); "
                + "install it with: apt-get install nbdkit libnbd-bin"
        }
    }

    /// `nbdkit`, the server the tests and the demo export through.
    public static func nbdkit() throws -> URL { try locate("nbdkit") }
    /// `nbdcopy` (libnbd-bin), to read an export back byte for byte.
    public static func nbdcopy() throws -> URL { try locate("nbdcopy") }
    /// `nbdinfo` (libnbd-bin), to list exports or print their size.
    public static func nbdinfo() throws -> URL { try locate("nbdinfo") }

    /// The first executable named `tool` in `$PATH` (plus the sbin directories, which a
    /// non-root `$PATH` often lacks).
    public static func locate(_ tool: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        var directories = path.split(separator: ":").map(String.init)
        for extra in ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/sbin"] where !directories.contains(extra) {
            directories.append(extra)
        }
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + tool
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return URL(fileURLWithPath: candidate)
            }
        }
        throw NotFound(tool: tool, searched: directories)
    }
}
