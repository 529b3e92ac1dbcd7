import Primitives
import Foundation

/// The version of the installed nbd-server, read from `nbd-server -V`
/// ("This is nbd-server version 3.24").
public struct NbdServerVersion: Comparable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    /// 3.24's SIGHUP reload has a use-after-free (`append_new_servers` frees the server
    /// objects it has just appended; fixed in 3.25, upstream commit 7bc199e): after a few
    /// reloads every export reads wrong bytes and the server dies. Adding exports by
    /// reload is only safe from 3.25 on.
    public static let firstSafeReload = NbdServerVersion(major: 3, minor: 25, patch: 0)

    public init(major: Int, minor: Int, patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    public var description: String { patch == 0 ? "\(major).\(minor)" : "\(major).\(minor).\(patch)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// The first `version X.Y[.Z]` in the output, nil when there is none.
    public static func parse(_ output: String) -> NbdServerVersion? {
        guard let match = output.firstMatch(of: /version\s+(\d+)\.(\d+)(?:\.(\d+))?/) else { return nil }
        guard let major = Int(match.1), let minor = Int(match.2) else { return nil }
        return NbdServerVersion(major: major, minor: minor, patch: match.3.flatMap { Int($0) } ?? 0)
    }

    /// Runs `<executable> -V` (looked up in `$PATH` when not absolute) and parses its output.
    public static func installed(executable: String = "nbd-server") async throws -> NbdServerVersion {
        let output: String
        do {
            output = try await runCapturingOutput("/usr/bin/env", [executable, "-V"])
        } catch {
            throw NBDExportError(.nbdServerVersionUnknown, "cannot run \(executable) -V: \(error); install nbd-server or use the nbdkit backend (VOLUMED_NBD_BACKEND=nbdkit)")
        }
        guard let version = parse(output) else {
            throw NBDExportError(
                .nbdServerVersionUnknown,
                "\(executable) -V printed no version (\(quotedForMessage(output.trimmingCharacters(in: .whitespacesAndNewlines)))); "
                    + "check that \(executable) is nbd-server, or use the nbdkit backend (VOLUMED_NBD_BACKEND=nbdkit)"
            )
        }
        return version
    }

    /// Fails unless `version` can add exports by SIGHUP safely.
    public static func requireSafeReload(_ version: NbdServerVersion) throws(NBDExportError) {
        guard version >= firstSafeReload else {
            throw NBDExportError(
                .nbdServerVersionUnsupported,
                "nbd-server \(version) is installed; its SIGHUP reload has a use-after-free (append_new_servers frees the "
                    + "exports it has just added, fixed in nbd-server \(firstSafeReload)): after a few reloads every export "
                    + "serves wrong bytes and the server crashes. Use the nbdkit backend (VOLUMED_NBD_BACKEND=nbdkit, "
                    + "the default) or install nbd-server \(firstSafeReload) or later"
            )
        }
    }

    /// Runs a short-lived tool and returns stdout and stderr together, awaiting its exit
    /// through the termination handler rather than blocking a thread.
    private static func runCapturingOutput(_ tool: String, _ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        // The tool has exited, so this read ends at once (a version banner fits the pipe buffer).
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard status == 0 else {
            throw NBDExportError(.nbdServerVersionUnknown, "\(arguments.joined(separator: " ")) exited with status \(status): \(output)")
        }
        return output
    }
}
